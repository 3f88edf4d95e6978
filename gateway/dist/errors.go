package dist

import (
	"errors"
	"fmt"
)

// Kinds of *FrameError; test with errors.Is.
var (
	// ErrDistHeader: the frame starts with a distribution header or a
	// fragment (131 68/69/70), which the gateway masked in the handshake.
	ErrDistHeader = errors.New("distribution header on a pass-through link")
	// ErrNotPassThrough: a non-tick frame does not start with 112.
	ErrNotPassThrough = errors.New("frame does not start with pass-through byte 112")
	// ErrBadVersion: the control or payload term does not start with 131.
	ErrBadVersion = errors.New("term does not start with version byte 131")
	// ErrBadTerm: the control or payload term is malformed or over a limit
	// (the *term.FormatError is wrapped too).
	ErrBadTerm = errors.New("malformed term")
	// ErrMissingPayload: the operation carries a payload and none follows.
	ErrMissingPayload = errors.New("missing payload")
	// ErrUnexpectedPayload: bytes follow the control of an operation that
	// has no payload.
	ErrUnexpectedPayload = errors.New("unexpected payload")
	// ErrTrailingBytes: bytes follow the payload.
	ErrTrailingBytes = errors.New("trailing bytes after the payload")
)

// FrameError reports a frame that is not a well-formed pass-through
// message. Kind is one of the Err* sentinels above.
type FrameError struct {
	Kind   error
	Op     Op     // the operation, when the control was decoded
	Off    int    // offset in the frame body where the problem was found
	Detail string // optional
	Err    error  // underlying error (a *term.FormatError), optional
}

func (e *FrameError) Error() string {
	s := "dist: " + e.Kind.Error()
	if e.Op != 0 {
		s += " in " + e.Op.String()
	}
	s += fmt.Sprintf(" at offset %d", e.Off)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the kind and the underlying error.
func (e *FrameError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// UnknownOpError reports a control tuple whose operation is not one of docs/wire.md#operations
// (including NODE_LINK, op 5, which erts treats as invalid).
type UnknownOpError struct {
	Op Op
}

func (e *UnknownOpError) Error() string {
	return fmt.Sprintf("dist: unknown control operation %d", uint8(e.Op))
}

// ControlError reports a control tuple of a known (or unreadable) operation
// with the wrong arity or a wrong element type.
type ControlError struct {
	Op     Op  // 0 when the operation itself could not be read
	Elem   int // 1-based tuple element; 0 for the tuple as a whole
	Reason string
}

func (e *ControlError) Error() string {
	name := "control tuple"
	if e.Op != 0 {
		name = e.Op.String()
	}
	if e.Elem == 0 {
		return fmt.Sprintf("dist: %s: %s", name, e.Reason)
	}
	return fmt.Sprintf("dist: %s element %d: %s", name, e.Elem, e.Reason)
}
