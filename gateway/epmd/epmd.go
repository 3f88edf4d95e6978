package epmd

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Request tags (the first byte of a request body).
const (
	tagAlive2Req      byte = 'x' // 120
	tagPortPlease2Req byte = 'z' // 122
	tagNamesReq       byte = 'n' // 110
	tagDumpReq        byte = 'd' // 100
	tagKillReq        byte = 'k' // 107
	tagStopReq        byte = 's' // 115
)

// Response tags (the first byte of a tagged response).
const (
	tagAlive2XResp byte = 'v' // 118
	tagAlive2Resp  byte = 'y' // 121
	tagPort2Resp   byte = 'w' // 119
)

// Limits on what this package reads and writes.
const (
	// DefaultPort is the well-known epmd port.
	DefaultPort = 4369
	// MaxRequest is the largest request body (after the 2-byte length)
	// ReadRequest accepts.
	MaxRequest = 1024
	// MaxName is the longest alive name, in bytes.
	MaxName = 255
	// MaxExtra is the longest Extra field of ALIVE2_REQ / PORT2_RESP.
	MaxExtra = 512
	// MaxNamesResp bounds a whole NAMES response, in bytes.
	MaxNamesResp = 64 << 10
	// MaxNamesLine bounds one line of a NAMES response, in bytes.
	MaxNamesLine = 1 << 10
	// MaxNamesEntries bounds the entries of a NAMES response.
	MaxNamesEntries = 4096
	// maxPort2Resp is the largest well-formed PORT2_RESP.
	maxPort2Resp = 1 + 1 + 2 + 1 + 1 + 2 + 2 + 2 + MaxName + 2 + MaxExtra
)

// Sentinel errors. Concrete errors returned by this package match one of
// these with errors.Is.
var (
	// ErrUnknownRequest: the request tag is not one this package knows.
	ErrUnknownRequest = errors.New("epmd: unknown request")
	// ErrTooLarge: a request or response exceeds its bound.
	ErrTooLarge = errors.New("epmd: message too large")
	// ErrMalformed: a message does not follow the wire format or a field
	// fails validation.
	ErrMalformed = errors.New("epmd: malformed message")
	// ErrNotFound: epmd answered PORT_PLEASE2 with a non-zero result.
	ErrNotFound = errors.New("epmd: node not found")
	// ErrVersionMismatch: the node's distribution versions do not overlap 5..6.
	ErrVersionMismatch = errors.New("epmd: no common distribution version")
	// ErrUnexpectedData: the peer sent bytes on a registration connection
	// after its ALIVE2_REQ.
	ErrUnexpectedData = errors.New("epmd: unexpected data after ALIVE2_REQ")
)

// UnknownRequestError reports a request whose tag byte is unknown.
type UnknownRequestError struct{ Tag byte }

func (e *UnknownRequestError) Error() string {
	return fmt.Sprintf("epmd: unknown request tag %d", e.Tag)
}

// Is reports whether target is ErrUnknownRequest.
func (e *UnknownRequestError) Is(target error) bool { return target == ErrUnknownRequest }

// TooLargeError reports a message longer than its bound.
type TooLargeError struct {
	What  string // e.g. "request", "NAMES response"
	Len   int    // the announced or observed length (a lower bound when read until close)
	Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("epmd: %s of %d bytes exceeds limit %d", e.What, e.Len, e.Limit)
}

// Is reports whether target is ErrTooLarge.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// FormatError reports a message that breaks the wire format.
type FormatError struct {
	Message string // the message type, e.g. "ALIVE2_REQ"
	Reason  string
}

func (e *FormatError) Error() string { return "epmd: malformed " + e.Message + ": " + e.Reason }

// Is reports whether target is ErrMalformed.
func (e *FormatError) Is(target error) bool { return target == ErrMalformed }

func malformed(msg, reason string) error { return &FormatError{Message: msg, Reason: reason} }

// Request is a message an epmd client sends. Decode takes the request body
// after the tag byte; Encode appends the whole framed request (2-byte
// length, tag, body).
type Request interface {
	Request() // marker
	Decode(src []byte) error
	Encode(dst []byte) ([]byte, error)
	// String returns the protocol name of the request, e.g. "PORT_PLEASE2_REQ".
	String() string
}

// Response is a message epmd sends back. Decode takes the response after
// its tag byte (NamesResp, which has no tag, takes all of it); Encode
// appends the whole unframed response.
type Response interface {
	Response() // marker
	Decode(src []byte) error
	Encode(dst []byte) ([]byte, error)
}

// checkName validates an alive name: non-empty, at most MaxName bytes,
// UTF-8, no '@' (alive names carry no host part) and no control
// characters (they would break the line-oriented NAMES output).
func checkName(msg, name string) error {
	switch {
	case name == "":
		return malformed(msg, "empty node name")
	case len(name) > MaxName:
		return malformed(msg, fmt.Sprintf("node name of %d bytes exceeds %d", len(name), MaxName))
	case !utf8.ValidString(name):
		return malformed(msg, "node name is not UTF-8")
	}
	for _, r := range name {
		if r == '@' || r < 0x20 || r == 0x7f {
			return malformed(msg, fmt.Sprintf("node name contains %q", r))
		}
	}
	return nil
}

// beginRequest reserves the length slot and appends the tag.
func beginRequest(dst []byte, tag byte) ([]byte, int) {
	sp := len(dst)
	return append(dst, 0, 0, tag), sp
}

// finishRequest back-patches the length reserved by beginRequest.
func finishRequest(msg string, dst []byte, sp int) ([]byte, error) {
	n := len(dst) - sp - 2
	if n > MaxRequest {
		return nil, &TooLargeError{What: msg, Len: n, Limit: MaxRequest}
	}
	dst[sp] = byte(n >> 8)
	dst[sp+1] = byte(n)
	return dst, nil
}

func appendUint16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// reader is a bounds-checked cursor over a message body.
type reader struct {
	msg string
	src []byte
	err error
}

func (r *reader) fail(reason string) {
	if r.err == nil {
		r.err = malformed(r.msg, reason)
	}
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.src) {
		r.fail(fmt.Sprintf("%s needs %d bytes, %d remain", what, n, len(r.src)))
		return nil
	}
	b := r.src[:n:n]
	r.src = r.src[n:]
	return b
}

func (r *reader) uint8(what string) uint8 {
	b := r.bytes(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) uint16(what string) uint16 {
	b := r.bytes(2, what)
	if b == nil {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

func (r *reader) uint32(what string) uint32 {
	b := r.bytes(4, what)
	if b == nil {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// done fails if bytes remain.
func (r *reader) done() error {
	if r.err == nil && len(r.src) != 0 {
		r.fail(fmt.Sprintf("%d trailing bytes", len(r.src)))
	}
	return r.err
}
