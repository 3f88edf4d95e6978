package handshake

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is. None of them, nor any other
// error or String output of this package, ever contains cookie text.
var (
	// ErrOldHandshake is returned for a v5 'n' send_name.
	ErrOldHandshake = errors.New("handshake: peer sent the pre-OTP-23 'n' handshake; beamgate supports only the v6 'N' handshake (OTP 23+)")

	// ErrNameMe is returned when the peer asks for a dynamic node name
	// (NAME_ME flag, or a host-only name).
	ErrNameMe = errors.New("handshake: peer has no node name and asked for a dynamic one (NAME_ME); " +
		"beamgate needs a fixed name: start the node with --sname/--name (erl -sname dev ... / iex --sname dev ...)")

	// ErrNameMismatch is returned by Initiate when the peer's challenge
	// names a node other than the one dialed.
	ErrNameMismatch = errors.New("handshake: peer is not the node we dialed")

	// ErrBadDigest is returned when the peer's digest does not match our
	// challenge and cookie: the peer does not know the cookie.
	ErrBadDigest = errors.New("handshake: peer's digest does not match (wrong cookie)")

	// ErrCookieRejected is returned by Initiate when the peer closes the
	// connection instead of acknowledging our challenge reply, which is
	// what OTP does on a wrong cookie.
	ErrCookieRejected = errors.New("handshake: peer closed the connection instead of acknowledging our digest (wrong cookie?)")

	// ErrNoCookie is returned by Accept when the cookie lookup has no
	// cookie for the peer.
	ErrNoCookie = errors.New("handshake: no cookie for peer")

	// ErrEmptyPacket is returned for a handshake packet of length 0.
	ErrEmptyPacket = errors.New("handshake: empty packet")
)

// FormatError reports a malformed handshake message.
type FormatError struct {
	Msg    string // message kind: "send_name", "status", ...
	Reason string
}

func (e *FormatError) Error() string {
	return "handshake: malformed " + e.Msg + ": " + e.Reason
}

// PacketTooLargeError reports a handshake packet longer than MaxPacket.
type PacketTooLargeError struct{ Len int }

func (e *PacketTooLargeError) Error() string {
	return fmt.Sprintf("handshake: packet of %d bytes exceeds the %d-byte limit", e.Len, MaxPacket)
}

// RefusedError reports that the acceptor refused the handshake with a
// status (nok, not_allowed, or alive when we may not replace the old
// connection).
type RefusedError struct{ Status StatusCode }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("handshake: peer refused the connection: %s", e.Status)
}

// MissingFlagsError reports a peer lacking capability flags that OTP
// mandates.
type MissingFlagsError struct {
	Peer    string
	Missing Flags
}

func (e *MissingFlagsError) Error() string {
	return fmt.Sprintf("handshake: node %q cannot handle mandatory distribution flags %s", e.Peer, e.Missing)
}

func formatErr(msg, format string, args ...any) error {
	return &FormatError{Msg: msg, Reason: fmt.Sprintf(format, args...)}
}
