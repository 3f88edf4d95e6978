package handshake

import (
	"fmt"
	"math/bits"
	"strings"
)

// Flags is the 64-bit distribution capability set exchanged in the
// handshake (DFLAG_* in erts dist.h and kernel dist.hrl).
type Flags uint64

// Capability bits. Values are from erts dist.h / kernel dist.hrl (OTP 25–29);
// see docs/wire.md#capability-flags and docs/wire.md#otp-versions.
const (
	Published          Flags = 0x1
	AtomCache          Flags = 0x2 // obsolete
	ExtendedReferences Flags = 0x4
	DistMonitor        Flags = 0x8
	FunTags            Flags = 0x10
	DistMonitorName    Flags = 0x20
	HiddenAtomCache    Flags = 0x40 // obsolete
	NewFunTags         Flags = 0x80
	ExtendedPidsPorts  Flags = 0x100
	ExportPtrTag       Flags = 0x200
	BitBinaries        Flags = 0x400
	NewFloats          Flags = 0x800
	UnicodeIO          Flags = 0x1000
	DistHdrAtomCache   Flags = 0x2000
	SmallAtomTags      Flags = 0x4000
	UTF8Atoms          Flags = 0x10000
	MapTag             Flags = 0x20000
	BigCreation        Flags = 0x40000
	SendSender         Flags = 0x80000
	BigSeqtraceLabels  Flags = 0x100000
	ExitPayload        Flags = 0x400000
	Fragments          Flags = 0x800000
	Handshake23        Flags = 0x1000000
	UnlinkID           Flags = 0x2000000
	Mandatory25Digest  Flags = 0x4000000 // stands for all of Mandatory25; see Expand
	Spawn              Flags = 1 << 32
	NameMe             Flags = 1 << 33 // a request for a dynamic name, not a capability
	V4NC               Flags = 1 << 34
	Alias              Flags = 1 << 35
	AltactSig          Flags = 1 << 37 // OTP 28: alternate-action signals (op 37)
	NativeRecords      Flags = 1 << 38 // OTP 29: native record terms
)

// Mandatory flag sets: a node of that release refuses a peer lacking them.
const (
	// Mandatory25 is DFLAG_DIST_MANDATORY_25 (0x1070F94), required by OTP 25+.
	Mandatory25 = ExtendedReferences | FunTags | ExtendedPidsPorts | UTF8Atoms |
		NewFunTags | BigCreation | NewFloats | MapTag | ExportPtrTag |
		BitBinaries | Handshake23
	// Mandatory26 is what OTP 26–29 require on top of Mandatory25.
	Mandatory26 = V4NC | UnlinkID
)

// Known is every bit beamgate understands. Anything else (including the
// node-internal ETS_COMPRESSED, PENDING_CONNECT and LOCAL_EXT bits, which
// never belong on the wire) is unknown and masked away by Mask.
const Known = Published | AtomCache | ExtendedReferences | DistMonitor |
	FunTags | DistMonitorName | HiddenAtomCache | NewFunTags |
	ExtendedPidsPorts | ExportPtrTag | BitBinaries | NewFloats | UnicodeIO |
	DistHdrAtomCache | SmallAtomTags | UTF8Atoms | MapTag | BigCreation |
	SendSender | BigSeqtraceLabels | ExitPayload | Fragments | Handshake23 |
	UnlinkID | Mandatory25Digest | Spawn | NameMe | V4NC | Alias | AltactSig |
	NativeRecords

// Stripped is what beamgate never relays: PUBLISHED (so both ends see a
// hidden connection), the atom caches and FRAGMENTS (so every frame is the
// plain pass-through form), NAME_ME (a request handled on the engineer
// leg), and ALTACT_SIG and NATIVE_RECORDS, decided as follows (issue 7,
// shown with real OTP 25, 27 and 29 nodes by gateway/relay/matrix_test.go).
//
// ALTACT_SIG (bit 37, on by default from OTP 28): masked. Its only use is
// ALTACT_SIG_SEND (op 37) for priority messages and for sends to an alias,
// which is how gen_server/gen:call replies travel between two OTP 28+
// nodes. Without the flag, OTP sends alias messages as ALIAS_SEND (op 33),
// which the relay already polices, and priority messages as plain sends;
// only an exit signal to an alias or a priority exit is dropped by the
// sender, and engineers have no read-only need for either. Measured on
// OTP 29.1.2: directly, the replies to net_adm:ping and gen_server:call
// arrive as op 37; through the relay the same calls succeed with the
// replies as op 33 and no op 37 on either leg (TestAltactSigOTP29). Masking
// also makes mixed legs (OTP 25/27 on one side, 29 on the other) agree on
// one frame vocabulary. The relay's decoder still knows op 37
// (dist.AltactSigSend), so a node sending it regardless is policed, not
// passed through unparsed.
//
// NATIVE_RECORDS (bit 38, new in OTP 29): masked, and native records stay
// undecodable by the policy decoder. OTP 29.1.2 does NOT consult the flag
// when encoding: a native record is sent as RECORD_EXT (ETF tag 67:
// Arity:32, Flags:8, Module, Name, field names, values) on a connection
// that lacks NATIVE_RECORDS, and even to an OTP 25 peer, which logs "got a
// corrupted external term" and drops the connection (TestNativeRecordsOTP29). So masking does not keep tag 67 off the wire; it
// only advertises truthfully. The safety comes from the relay: an engineer
// frame holding tag 67 fails to decode, is audited as "malformed" and ends
// the session before production sees a byte of it (production is
// unchanged, the engineer's next call reconnects). Production→engineer
// frames are not decoded, so native records from production still reach
// an OTP 29 engineer (an older engineer's node drops the connection, as it
// would when connected directly). Decoding tag 67 would only let engineers
// send native records to production, which no read-only tool needs.
const Stripped = Published | AtomCache | HiddenAtomCache | DistHdrAtomCache |
	Fragments | NameMe | AltactSig | NativeRecords

// Relayable is the set of flags beamgate passes between the two legs.
// Both peers compute ours&theirs, so masking each leg's announcement with
// Relayable makes both ends agree on F_e & F_p & Relayable (docs/wire.md#masking).
const Relayable = Known &^ Stripped

// ClientFlags is what beamgate's own hidden client node advertises: every
// relayable flag, which covers what OTP 25–29 mandate plus SPAWN, ALIAS,
// DIST_MONITOR(_NAME), SEND_SENDER, EXIT_PAYLOAD and the rest. It never
// contains PUBLISHED, DIST_HDR_ATOM_CACHE or FRAGMENTS.
const ClientFlags = Relayable

// Expand returns f with all of Mandatory25 added when f carries
// Mandatory25Digest, as receivers do (dist_util expand_mandatory_25_flag).
func (f Flags) Expand() Flags {
	if f&Mandatory25Digest != 0 {
		f |= Mandatory25
	}
	return f
}

// Mask returns the flags to announce to the other leg for a peer that
// announced f: f expanded, restricted to Relayable. unknown holds the bits
// of f that beamgate does not know, so the caller can log them once.
//
// Relayable is a subset of Known, so a bit added by a future OTP release
// is always cleared, in both directions, and never passed through for
// frames the decoder would not understand. Both peers use the
// intersection of what they were told, so a cleared bit is simply not
// negotiated.
func Mask(f Flags) (masked, unknown Flags) {
	return f.Expand() & Relayable, f &^ Known
}

var flagNames = [...]struct {
	bit  Flags
	name string
}{
	{Published, "PUBLISHED"},
	{AtomCache, "ATOM_CACHE"},
	{ExtendedReferences, "EXTENDED_REFERENCES"},
	{DistMonitor, "DIST_MONITOR"},
	{FunTags, "FUN_TAGS"},
	{DistMonitorName, "DIST_MONITOR_NAME"},
	{HiddenAtomCache, "HIDDEN_ATOM_CACHE"},
	{NewFunTags, "NEW_FUN_TAGS"},
	{ExtendedPidsPorts, "EXTENDED_PIDS_PORTS"},
	{ExportPtrTag, "EXPORT_PTR_TAG"},
	{BitBinaries, "BIT_BINARIES"},
	{NewFloats, "NEW_FLOATS"},
	{UnicodeIO, "UNICODE_IO"},
	{DistHdrAtomCache, "DIST_HDR_ATOM_CACHE"},
	{SmallAtomTags, "SMALL_ATOM_TAGS"},
	{UTF8Atoms, "UTF8_ATOMS"},
	{MapTag, "MAP_TAG"},
	{BigCreation, "BIG_CREATION"},
	{SendSender, "SEND_SENDER"},
	{BigSeqtraceLabels, "BIG_SEQTRACE_LABELS"},
	{ExitPayload, "EXIT_PAYLOAD"},
	{Fragments, "FRAGMENTS"},
	{Handshake23, "HANDSHAKE_23"},
	{UnlinkID, "UNLINK_ID"},
	{Mandatory25Digest, "MANDATORY_25_DIGEST"},
	{Spawn, "SPAWN"},
	{NameMe, "NAME_ME"},
	{V4NC, "V4_NC"},
	{Alias, "ALIAS"},
	{AltactSig, "ALTACT_SIG"},
	{NativeRecords, "NATIVE_RECORDS"},
}

// String lists the flag names in bit order, OTP-style (UNLINK_ID|V4_NC),
// and each unknown bit in hex. The empty set prints as "0".
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var b strings.Builder
	for rest := f; rest != 0; rest &= rest - 1 {
		bit := Flags(1) << bits.TrailingZeros64(uint64(rest))
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString(bitName(bit))
	}
	return b.String()
}

func bitName(bit Flags) string {
	for _, n := range flagNames {
		if n.bit == bit {
			return n.name
		}
	}
	return fmt.Sprintf("%#x", uint64(bit))
}
