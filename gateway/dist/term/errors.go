package term

import (
	"errors"
	"strconv"
)

// Error kinds. Every decode failure is a *FormatError whose Kind is one of
// these, so callers (and tests) classify failures with errors.Is.
var (
	// ErrTruncated: the input ends before the term does, or a declared
	// length or count exceeds the bytes that remain.
	ErrTruncated = errors.New("truncated term")
	// ErrVersion: the input does not start with the version byte 131.
	ErrVersion = errors.New("bad version byte")
	// ErrUnknownTag: a tag that is not part of the external term format.
	ErrUnknownTag = errors.New("unknown tag")
	// ErrCompressed: a compressed term (tag 80). The distribution encoder
	// never produces one; inflating it would defeat the size limits.
	ErrCompressed = errors.New("compressed term")
	// ErrLocalExt: LOCAL_EXT (121), a node-local encoding.
	ErrLocalExt = errors.New("LOCAL_EXT term")
	// ErrFunExt: the removed FUN_EXT (117).
	ErrFunExt = errors.New("removed FUN_EXT")
	// ErrAtomCacheRef: ATOM_CACHE_REF (82) outside a distribution header.
	ErrAtomCacheRef = errors.New("atom cache reference")
	// ErrBadAtom: an atom that is not valid UTF-8 or is too long.
	ErrBadAtom = errors.New("bad atom")
	// ErrTrailingBytes: bytes left over after the one term (Unmarshal).
	ErrTrailingBytes = errors.New("trailing bytes")
	// ErrLimit: a Limits bound (depth, element count, size) was exceeded.
	ErrLimit = errors.New("limit exceeded")
	// ErrBadValue: a well-framed value Erlang would not accept or that
	// beamgate refuses: a non-finite float, a bad reference length, a
	// duplicate map key, a non-atom node, a bad bit count, ...
	ErrBadValue = errors.New("bad value")
)

// FormatError reports why a term was refused and where.
type FormatError struct {
	Tag    byte  // tag of the term being decoded (0 before the first tag)
	Off    int   // offset in the input (the version byte is offset 0)
	Kind   error // one of the Err* kinds above
	Detail string
}

func (e *FormatError) Error() string {
	s := "term: " + e.Kind.Error() + " at offset " + strconv.Itoa(e.Off)
	if e.Tag != 0 {
		s += " (tag " + strconv.Itoa(int(e.Tag)) + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the error kind.
func (e *FormatError) Unwrap() error { return e.Kind }

// EncodeError reports a Go value that has no valid encoding (nil Term,
// over-long or non-UTF-8 atom, non-finite float, bad bit count, ...).
type EncodeError struct {
	Term   Term
	Detail string
}

func (e *EncodeError) Error() string { return "term: cannot encode: " + e.Detail }

// Unwrap makes errors.Is(err, ErrBadValue) true for encode errors too.
func (e *EncodeError) Unwrap() error { return ErrBadValue }

// Limits bounds what Decode and Skip accept. A nil *Limits, and any field
// that is zero or negative, means the DefaultLimits value.
type Limits struct {
	MaxDepth    int // nesting of lists, tuples, maps and funs
	MaxElements int // elements across the whole term (list/tuple elements, 2 per map pair, fun free variables)
	MaxAtomLen  int // atom length in characters (Erlang's own limit is 255)
	MaxBinary   int // bytes in one binary or bit binary
	MaxBigBytes int // magnitude bytes of one bignum
}

// DefaultLimits returns the limits used when none are given.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:    100,
		MaxElements: 1 << 20,
		MaxAtomLen:  255,
		MaxBinary:   64 << 20,
		MaxBigBytes: 1024,
	}
}

func (l *Limits) resolve() Limits {
	d := DefaultLimits()
	if l == nil {
		return d
	}
	pick := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	return Limits{
		MaxDepth:    pick(l.MaxDepth, d.MaxDepth),
		MaxElements: pick(l.MaxElements, d.MaxElements),
		MaxAtomLen:  pick(l.MaxAtomLen, d.MaxAtomLen),
		MaxBinary:   pick(l.MaxBinary, d.MaxBinary),
		MaxBigBytes: pick(l.MaxBigBytes, d.MaxBigBytes),
	}
}
