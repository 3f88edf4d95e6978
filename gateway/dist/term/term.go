// Package term is beamgate's bounded codec for the Erlang External Term
// Format (ETF): the values that travel inside distribution frames.
//
// It decodes untrusted bytes from engineers' nodes, so every length is
// checked against the bytes that remain before anything is allocated, and
// nesting depth, element counts, atom length, binary and bignum size are
// bounded by Limits. Tags that have no business on a policed distribution
// link (compressed terms, LOCAL_EXT, the removed FUN_EXT, atom-cache
// references outside a distribution header) are rejected with a typed
// *FormatError.
//
// Terms are plain Go values of the types below, so policy code reads
// naturally: a type switch over Atom, Int, Tuple, List, Pid and friends.
package term

import (
	"math/big"
)

// Term is any decoded Erlang term. The concrete types are Atom, Int, Big,
// Float, Binary, BitBinary, String, Nil, List, Tuple, Map, Pid, Port, Ref,
// Fun and Export.
type Term interface{ isTerm() }

// Atom is an atom, held as UTF-8 text whatever tag carried it (ATOM_EXT,
// SMALL_ATOM_EXT, ATOM_UTF8_EXT, SMALL_ATOM_UTF8_EXT). Policy code matches
// atoms by value, never by their encoding.
type Atom string

// Int is an integer that fits in an int64. Decoding normalises
// SMALL_INTEGER, INTEGER and small bignums to Int; encoding picks the
// shortest canonical tag.
type Int int64

// Big is an integer outside the int64 range (SMALL_BIG_EXT / LARGE_BIG_EXT).
type Big struct{ V *big.Int }

// Float is a finite IEEE-754 double (NEW_FLOAT_EXT, or the legacy FLOAT_EXT).
type Float float64

// Binary is a byte-aligned binary (BINARY_EXT).
type Binary []byte

// BitBinary is a binary whose last byte holds only Bits (1..8) significant
// bits (BIT_BINARY_EXT).
type BitBinary struct {
	Data []byte
	Bits uint8
}

// String is a STRING_EXT: a proper list of small integers 0..255 sent in
// compact form. It is a list to Erlang; it is kept apart here so that an
// encode→decode round trip is the identity.
type String []byte

// Nil is the empty list [].
type Nil struct{}

// List is a non-empty list. Tail is Nil{} for a proper list and any other
// term for an improper one, such as gen:call's [alias|Ref] tag.
type List struct {
	Elems []Term
	Tail  Term
}

// Tuple is a tuple (SMALL_TUPLE_EXT / LARGE_TUPLE_EXT).
type Tuple []Term

// Map is a map held as its key/value pairs in wire order. Keys may be any
// term; duplicate keys are rejected on decode.
type Map []Pair

// Pair is one key/value association of a Map.
type Pair struct{ Key, Value Term }

// Pid is a process identifier (NEW_PID_EXT, or the legacy PID_EXT).
type Pid struct {
	Node     Atom
	ID       uint32
	Serial   uint32
	Creation uint32
}

// Port is a port identifier (V4_PORT_EXT, NEW_PORT_EXT, or legacy PORT_EXT).
type Port struct {
	Node     Atom
	ID       uint64
	Creation uint32
}

// Ref is a reference (NEWER_REFERENCE_EXT, or the legacy forms). ID holds
// 1..5 words.
type Ref struct {
	Node     Atom
	Creation uint32
	ID       []uint32
}

// Fun is a closure (NEW_FUN_EXT). Funs carry code: policy refuses any
// engineer term that contains one.
type Fun struct {
	Arity    uint8
	Uniq     [16]byte
	Index    uint32
	Module   Atom
	OldIndex Term // an integer
	OldUniq  Term // an integer
	Pid      Pid
	Free     []Term
}

// Export is an external fun, fun M:F/A (EXPORT_EXT).
type Export struct {
	Module   Atom
	Function Atom
	Arity    int
}

func (Atom) isTerm()      {}
func (Int) isTerm()       {}
func (Big) isTerm()       {}
func (Float) isTerm()     {}
func (Binary) isTerm()    {}
func (BitBinary) isTerm() {}
func (String) isTerm()    {}
func (Nil) isTerm()       {}
func (List) isTerm()      {}
func (Tuple) isTerm()     {}
func (Map) isTerm()       {}
func (Pid) isTerm()       {}
func (Port) isTerm()      {}
func (Ref) isTerm()       {}
func (Fun) isTerm()       {}
func (Export) isTerm()    {}

// Common atoms.
const (
	True      Atom = "true"
	False     Atom = "false"
	Undefined Atom = "undefined"
	EmptyAtom Atom = ""
)

// Tuple helpers used throughout policy and control-message code.

// IsTagged reports whether t is a tuple of size n whose first element is
// the atom tag.
func IsTagged(t Term, tag Atom, n int) bool {
	tp, ok := t.(Tuple)
	if !ok || len(tp) != n {
		return false
	}
	a, ok := tp[0].(Atom)
	return ok && a == tag
}

// ListElems returns the elements of a proper list (Nil, List with a Nil
// tail, or String) and whether t was one.
func ListElems(t Term) ([]Term, bool) {
	switch v := t.(type) {
	case Nil:
		return nil, true
	case List:
		if _, ok := v.Tail.(Nil); !ok {
			return nil, false
		}
		return v.Elems, true
	case String:
		out := make([]Term, len(v))
		for i, c := range v {
			out[i] = Int(c)
		}
		return out, true
	}
	return nil, false
}

// MakeList builds a proper list from elems (Nil when empty).
func MakeList(elems ...Term) Term {
	if len(elems) == 0 {
		return Nil{}
	}
	return List{Elems: elems, Tail: Nil{}}
}
