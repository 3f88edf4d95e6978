package handshake

import "testing"

func TestMandatoryValues(t *testing.T) {
	// Values from erts_internal:get_dflags() (docs/wire.md#otp-versions).
	tests := []struct {
		name      string
		got, want Flags
	}{
		{"Mandatory25", Mandatory25, 0x1070F94},
		{"Mandatory25|Mandatory26", Mandatory25 | Mandatory26, 0x403070F94},
		{"OTP 25/27 default is Known", 0xD07DF7FBC &^ Known, 0},
		{"OTP 29 default is Known", 0x6D07DF7FBC &^ Known, 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, uint64(tt.got), uint64(tt.want))
		}
	}
}

func TestExpand(t *testing.T) {
	if got := Mandatory25Digest.Expand(); got != Mandatory25Digest|Mandatory25 {
		t.Errorf("Mandatory25Digest.Expand() = %v", got)
	}
	if got := (Published | Spawn).Expand(); got != Published|Spawn {
		t.Errorf("Expand without the digest bit changed flags: %v", got)
	}
}

func TestMask(t *testing.T) {
	const (
		etsCompressed Flags = 0x8000
		localExt      Flags = 1 << 36
		bit40         Flags = 1 << 40
	)
	tests := []struct {
		name                  string
		in                    Flags
		wantMasked, wantUnkwn Flags
	}{
		{"otp25 default", 0xD07DF7FBC, 0xD07DF7FBC &^ (DistHdrAtomCache | Fragments), 0},
		{"otp29 default drops ALTACT_SIG and NATIVE_RECORDS", 0x6D07DF7FBC, 0xD07DF7FBC &^ (DistHdrAtomCache | Fragments), 0},
		{"published, name_me and caches dropped", Published | NameMe | AtomCache | HiddenAtomCache | Spawn, Spawn, 0},
		{"digest expands before masking", Mandatory25Digest | Published, Mandatory25Digest | Mandatory25, 0},
		{"unknown and internal bits reported", Alias | etsCompressed | localExt | bit40 | 1<<63, Alias, etsCompressed | localExt | bit40 | 1<<63},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			masked, unknown := Mask(tt.in)
			if masked != tt.wantMasked || unknown != tt.wantUnkwn {
				t.Errorf("Mask(%v) = %v, %v; want %v, %v", tt.in, masked, unknown, tt.wantMasked, tt.wantUnkwn)
			}
		})
	}
}

func TestClientFlags(t *testing.T) {
	want := Mandatory25 | Mandatory26 | Spawn | Alias | DistMonitor | DistMonitorName |
		SendSender | ExitPayload | Mandatory25Digest | UTF8Atoms | UnicodeIO
	if missing := want &^ ClientFlags; missing != 0 {
		t.Errorf("ClientFlags lacks %v", missing)
	}
	if bad := ClientFlags & (Published | DistHdrAtomCache | Fragments | NameMe | AltactSig | NativeRecords); bad != 0 {
		t.Errorf("ClientFlags has %v", bad)
	}
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		in   Flags
		want string
	}{
		{0, "0"},
		{Published, "PUBLISHED"},
		{UnlinkID | V4NC, "UNLINK_ID|V4_NC"},
		{AltactSig | NativeRecords | 0x8000 | 1<<63, "0x8000|ALTACT_SIG|NATIVE_RECORDS|0x8000000000000000"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Flags(%#x).String() = %q, want %q", uint64(tt.in), got, tt.want)
		}
	}
}

// Every bit beamgate does not know, today's internal bits and any a future
// OTP release adds, is cleared and reported; every known bit outside
// Relayable is cleared silently.
func TestMaskClearsEveryUnknownBit(t *testing.T) {
	if Relayable&^Known != 0 {
		t.Fatalf("Relayable has unknown bits %v", Relayable&^Known)
	}
	const otp29 Flags = 0x6D07DF7FBC
	for i := range 64 {
		bit := Flags(1) << i
		masked, unknown := Mask(otp29 | bit)
		if masked&^Relayable != 0 {
			t.Errorf("bit %d: Mask passed %v", i, masked&^Relayable)
		}
		if bit&Known == 0 && (unknown != bit || masked&bit != 0) {
			t.Errorf("bit %d (unknown): masked %v, reported %v", i, masked, unknown)
		}
		if bit&Known != 0 && unknown != 0 {
			t.Errorf("bit %d (known): reported as unknown %v", i, unknown)
		}
	}
	// A future capability bit next to everything OTP 29 offers.
	const future Flags = 1 << 45
	masked, unknown := Mask(otp29 | future)
	if masked&future != 0 || unknown != future {
		t.Errorf("Mask(OTP 29 | bit 45) = %v, %v", masked, unknown)
	}
	if masked&(AltactSig|NativeRecords) != 0 {
		t.Errorf("Mask kept OTP 28/29 flags beamgate masks: %v", masked)
	}
}
