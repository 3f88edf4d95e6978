package handshake

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxNameLen bounds a node name in bytes: 255 characters of up to 4 UTF-8
// bytes each, rounded to 1023.
const MaxNameLen = 1023

// Message is one handshake message. Decode parses a packet body (after the
// 2-byte length); Encode appends the body to dst. Decoded values never
// alias src.
type Message interface {
	Decode(src []byte) error
	Encode(dst []byte) []byte
	kind() string
}

// Message tags (the first body byte).
const (
	tagName      = 'N' // send_name v6, and send_challenge v6
	tagOldName   = 'n' // send_name v5 (rejected)
	tagStatus    = 's' // send_status and the status reply
	tagReply     = 'r' // challenge_reply
	tagAck       = 'a' // challenge_ack
	digestLen    = 16
	namedPrefix  = "named:"
	statusTrue   = "true"
	statusFalse  = "false"
	maxQuotedLen = 32 // how much of a bad status text an error quotes
)

// Name is the initiator's v6 send_name: 'N' Flags:64 Creation:32
// NameLen:16 Name, trailing data ignored as OTP does.
type Name struct {
	Flags    Flags
	Creation uint32
	Name     string
}

func (*Name) kind() string { return "send_name" }

// Decode parses a send_name. A v5 'n' yields ErrOldHandshake; a NAME_ME
// request or a host-only name yields ErrNameMe (with the fields filled in).
func (m *Name) Decode(src []byte) error {
	if len(src) > 0 && src[0] == tagOldName {
		return ErrOldHandshake
	}
	const fixed = 1 + 8 + 4 + 2
	if len(src) < fixed {
		return formatErr(m.kind(), "%d bytes, want at least %d", len(src), fixed)
	}
	if src[0] != tagName {
		return formatErr(m.kind(), "tag %q, want 'N'", src[0])
	}
	name, err := readName(m.kind(), src[fixed-2:])
	if err != nil {
		return err
	}
	m.Flags = Flags(binary.BigEndian.Uint64(src[1:]))
	m.Creation = binary.BigEndian.Uint32(src[9:])
	m.Name = name
	if m.Flags&NameMe != 0 || !strings.Contains(name, "@") {
		return ErrNameMe
	}
	return checkNodeName(m.kind(), name)
}

// Encode appends the send_name body.
func (m *Name) Encode(dst []byte) []byte {
	dst = append(dst, tagName)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Flags))
	dst = binary.BigEndian.AppendUint32(dst, m.Creation)
	return appendName(dst, m.Name)
}

// StatusCode is the text of a send_status.
type StatusCode string

// Status codes (dist_util send_status).
const (
	StatusOk             StatusCode = "ok"
	StatusOkSimultaneous StatusCode = "ok_simultaneous"
	StatusNok            StatusCode = "nok"
	StatusNotAllowed     StatusCode = "not_allowed"
	StatusAlive          StatusCode = "alive"
	StatusNamed          StatusCode = "named" // carries Name and Creation
)

// Status is the acceptor's send_status: 's' + status text, or
// 's' "named:" NameLen:16 Name Creation:32 for a dynamic-name grant.
type Status struct {
	Code     StatusCode
	Name     string // only for StatusNamed
	Creation uint32 // only for StatusNamed
}

func (*Status) kind() string { return "status" }

// Decode parses a send_status; unknown status text is a *FormatError.
func (m *Status) Decode(src []byte) error {
	if len(src) < 1 || src[0] != tagStatus {
		return badTag(m.kind(), src, tagStatus)
	}
	text := src[1:]
	if rest, ok := bytes.CutPrefix(text, []byte(namedPrefix)); ok {
		name, err := readName(m.kind(), rest)
		if err != nil {
			return err
		}
		rest = rest[2+len(name):]
		if len(rest) < 4 {
			return formatErr(m.kind(), "named: creation truncated")
		}
		if err := checkNodeName(m.kind(), name); err != nil {
			return err
		}
		*m = Status{Code: StatusNamed, Name: name, Creation: binary.BigEndian.Uint32(rest)}
		return nil
	}
	switch c := StatusCode(text); c {
	case StatusOk, StatusOkSimultaneous, StatusNok, StatusNotAllowed, StatusAlive:
		*m = Status{Code: c}
		return nil
	}
	return formatErr(m.kind(), "unknown status %s", quote(text))
}

// Encode appends the send_status body.
func (m *Status) Encode(dst []byte) []byte {
	dst = append(dst, tagStatus)
	if m.Code != StatusNamed {
		return append(dst, m.Code...)
	}
	dst = append(dst, namedPrefix...)
	dst = appendName(dst, m.Name)
	return binary.BigEndian.AppendUint32(dst, m.Creation)
}

// StatusReply is the initiator's answer to an "alive" status: 's' "true"
// (its old connection is dead, carry on) or 's' "false" (abort).
type StatusReply struct{ Continue bool }

func (*StatusReply) kind() string { return "status reply" }

// Decode parses a status reply.
func (m *StatusReply) Decode(src []byte) error {
	if len(src) < 1 || src[0] != tagStatus {
		return badTag(m.kind(), src, tagStatus)
	}
	switch string(src[1:]) {
	case statusTrue:
		m.Continue = true
	case statusFalse:
		m.Continue = false
	default:
		return formatErr(m.kind(), "%s, want \"true\" or \"false\"", quote(src[1:]))
	}
	return nil
}

// Encode appends the status reply body.
func (m *StatusReply) Encode(dst []byte) []byte {
	dst = append(dst, tagStatus)
	if m.Continue {
		return append(dst, statusTrue...)
	}
	return append(dst, statusFalse...)
}

// Challenge is the acceptor's v6 send_challenge: 'N' Flags:64
// Challenge:32 Creation:32 NameLen:16 Name, trailing data ignored.
type Challenge struct {
	Flags     Flags
	Challenge uint32
	Creation  uint32
	Name      string
}

func (*Challenge) kind() string { return "challenge" }

// Decode parses a send_challenge.
func (m *Challenge) Decode(src []byte) error {
	const fixed = 1 + 8 + 4 + 4 + 2
	if len(src) < fixed {
		return formatErr(m.kind(), "%d bytes, want at least %d", len(src), fixed)
	}
	if src[0] != tagName {
		return badTag(m.kind(), src, tagName)
	}
	name, err := readName(m.kind(), src[fixed-2:])
	if err != nil {
		return err
	}
	if err := checkNodeName(m.kind(), name); err != nil {
		return err
	}
	*m = Challenge{
		Flags:     Flags(binary.BigEndian.Uint64(src[1:])),
		Challenge: binary.BigEndian.Uint32(src[9:]),
		Creation:  binary.BigEndian.Uint32(src[13:]),
		Name:      name,
	}
	return nil
}

// Encode appends the send_challenge body.
func (m *Challenge) Encode(dst []byte) []byte {
	dst = append(dst, tagName)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Flags))
	dst = binary.BigEndian.AppendUint32(dst, m.Challenge)
	dst = binary.BigEndian.AppendUint32(dst, m.Creation)
	return appendName(dst, m.Name)
}

// ChallengeReply is the initiator's 'r' Challenge:32 Digest:16: its own
// challenge for the acceptor and the digest of the acceptor's challenge.
type ChallengeReply struct {
	Challenge uint32
	Digest    [digestLen]byte
}

func (*ChallengeReply) kind() string { return "challenge reply" }

// Decode parses a challenge reply (exactly 21 bytes).
func (m *ChallengeReply) Decode(src []byte) error {
	if len(src) < 1 || src[0] != tagReply {
		return badTag(m.kind(), src, tagReply)
	}
	if len(src) != 1+4+digestLen {
		return formatErr(m.kind(), "%d bytes, want %d", len(src), 1+4+digestLen)
	}
	m.Challenge = binary.BigEndian.Uint32(src[1:])
	copy(m.Digest[:], src[5:])
	return nil
}

// Encode appends the challenge reply body.
func (m *ChallengeReply) Encode(dst []byte) []byte {
	dst = append(dst, tagReply)
	dst = binary.BigEndian.AppendUint32(dst, m.Challenge)
	return append(dst, m.Digest[:]...)
}

// ChallengeAck is the acceptor's 'a' Digest:16, the digest of the
// initiator's challenge.
type ChallengeAck struct{ Digest [digestLen]byte }

func (*ChallengeAck) kind() string { return "challenge ack" }

// Decode parses a challenge ack (exactly 17 bytes).
func (m *ChallengeAck) Decode(src []byte) error {
	if len(src) < 1 || src[0] != tagAck {
		return badTag(m.kind(), src, tagAck)
	}
	if len(src) != 1+digestLen {
		return formatErr(m.kind(), "%d bytes, want %d", len(src), 1+digestLen)
	}
	copy(m.Digest[:], src[1:])
	return nil
}

// Encode appends the challenge ack body.
func (m *ChallengeAck) Encode(dst []byte) []byte {
	return append(append(dst, tagAck), m.Digest[:]...)
}

// readName reads NameLen:16 Name from the start of src, bounds first.
func readName(msg string, src []byte) (string, error) {
	if len(src) < 2 {
		return "", formatErr(msg, "name length truncated")
	}
	n := int(binary.BigEndian.Uint16(src))
	if n > MaxNameLen {
		return "", formatErr(msg, "name of %d bytes exceeds %d", n, MaxNameLen)
	}
	if n > len(src)-2 {
		return "", formatErr(msg, "name of %d bytes but only %d remain", n, len(src)-2)
	}
	return string(src[2 : 2+n]), nil
}

func appendName(dst []byte, name string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
	return append(dst, name...)
}

// CheckNodeName reports whether name is a node name beamgate accepts:
// alive@host with both parts non-empty, one '@', at most MaxNameLen bytes,
// valid UTF-8 and no control characters (names end up in logs).
func CheckNodeName(name string) error { return checkNodeName("node name", name) }

func checkNodeName(msg, name string) error {
	switch {
	case len(name) == 0:
		return formatErr(msg, "empty node name")
	case len(name) > MaxNameLen:
		return formatErr(msg, "node name of %d bytes exceeds %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return formatErr(msg, "node name is not valid UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return formatErr(msg, "node name contains a control character")
	}
	alive, host, ok := strings.Cut(name, "@")
	if !ok || alive == "" || host == "" || strings.Contains(host, "@") {
		return formatErr(msg, "node name %s is not alive@host", quote([]byte(name)))
	}
	return nil
}

func badTag(msg string, src []byte, want byte) error {
	if len(src) == 0 {
		return formatErr(msg, "empty body")
	}
	return formatErr(msg, "tag %q, want %q", src[0], want)
}

// quote renders untrusted bytes for an error, truncated.
func quote(b []byte) string {
	if len(b) > maxQuotedLen {
		return strconv.Quote(string(b[:maxQuotedLen])) + "..."
	}
	return strconv.Quote(string(b))
}
