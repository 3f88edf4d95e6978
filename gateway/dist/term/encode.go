package term

import (
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
)

// maxEncodeDepth guards Append against cyclic Go values (a Tuple that
// contains itself); decodable terms are far shallower.
const maxEncodeDepth = 1 << 14

// Marshal returns the encoding of t, with its version byte.
func Marshal(t Term) ([]byte, error) { return Append(nil, t) }

// Append appends the version byte 131 and the encoding of t to dst. It
// always uses the modern tags: SMALL_ATOM_UTF8/ATOM_UTF8, NEW_PID,
// NEW_PORT (V4_PORT only for IDs beyond 32 bits), NEWER_REFERENCE,
// NEW_FLOAT and the shortest canonical integer tag. On error dst is
// returned unchanged together with an *EncodeError.
func Append(dst []byte, t Term) ([]byte, error) {
	out, err := AppendBody(append(dst, Version), t)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// AppendBody is Append without the version byte.
func AppendBody(dst []byte, t Term) ([]byte, error) {
	e := encoder{buf: dst}
	if err := e.term(t, 0); err != nil {
		return dst, err
	}
	return e.buf, nil
}

type encoder struct{ buf []byte }

func (e *encoder) u8(v byte)    { e.buf = append(e.buf, v) }
func (e *encoder) u16(v int)    { e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(v)) }
func (e *encoder) u32(v uint32) { e.buf = binary.BigEndian.AppendUint32(e.buf, v) }

func bad(t Term, detail string) error { return &EncodeError{Term: t, Detail: detail} }

func (e *encoder) term(t Term, depth int) error {
	if depth > maxEncodeDepth {
		return bad(t, "nesting deeper than "+strconv.Itoa(maxEncodeDepth))
	}
	switch x := t.(type) {
	case nil:
		return bad(t, "nil Term")
	case Atom:
		return e.atom(x)
	case Int:
		e.int(int64(x))
	case Big:
		return e.big(x)
	case Float:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return bad(t, "non-finite float")
		}
		e.u8(tagNewFloat)
		e.buf = binary.BigEndian.AppendUint64(e.buf, math.Float64bits(f))
	case Binary:
		if uint64(len(x)) > math.MaxUint32 {
			return bad(t, "binary too long")
		}
		e.u8(tagBinary)
		e.u32(uint32(len(x)))
		e.buf = append(e.buf, x...)
	case BitBinary:
		if len(x.Data) == 0 || x.Bits == 0 || x.Bits > 8 || uint64(len(x.Data)) > math.MaxUint32 {
			return bad(t, "bit binary of "+strconv.Itoa(len(x.Data))+" bytes with "+strconv.Itoa(int(x.Bits))+" bits")
		}
		e.u8(tagBitBinary)
		e.u32(uint32(len(x.Data)))
		e.u8(x.Bits)
		e.buf = append(e.buf, x.Data[:len(x.Data)-1]...)
		e.u8(x.Data[len(x.Data)-1] & (0xff << (8 - x.Bits)))
	case String:
		return e.string(x)
	case Nil:
		e.u8(tagNil)
	case List:
		return e.list(x, depth)
	case Tuple:
		if len(x) <= 0xff {
			e.u8(tagSmallTuple)
			e.u8(byte(len(x)))
		} else {
			e.u8(tagLargeTuple)
			e.u32(uint32(len(x)))
		}
		return e.terms(x, depth)
	case Map:
		if duplicateKey(x) >= 0 {
			return bad(t, "duplicate map key")
		}
		e.u8(tagMap)
		e.u32(uint32(len(x)))
		for _, p := range x {
			if err := e.term(p.Key, depth+1); err != nil {
				return err
			}
			if err := e.term(p.Value, depth+1); err != nil {
				return err
			}
		}
	case Pid:
		return e.pid(x)
	case Port:
		if x.ID > math.MaxUint32 {
			e.u8(tagV4Port)
		} else {
			e.u8(tagNewPort)
		}
		if err := e.atom(x.Node); err != nil {
			return err
		}
		if x.ID > math.MaxUint32 {
			e.buf = binary.BigEndian.AppendUint64(e.buf, x.ID)
		} else {
			e.u32(uint32(x.ID))
		}
		e.u32(x.Creation)
	case Ref:
		if len(x.ID) < 1 || len(x.ID) > 5 {
			return bad(t, "reference of "+strconv.Itoa(len(x.ID))+" words")
		}
		e.u8(tagNewerReference)
		e.u16(len(x.ID))
		if err := e.atom(x.Node); err != nil {
			return err
		}
		e.u32(x.Creation)
		for _, w := range x.ID {
			e.u32(w)
		}
	case Fun:
		return e.fun(x, depth)
	case Export:
		if x.Arity < 0 || x.Arity > 255 {
			return bad(t, "export arity "+strconv.Itoa(x.Arity))
		}
		e.u8(tagExport)
		if err := e.atom(x.Module); err != nil {
			return err
		}
		if err := e.atom(x.Function); err != nil {
			return err
		}
		e.u8(tagSmallInteger)
		e.u8(byte(x.Arity))
	default:
		return bad(t, "unknown Term type")
	}
	return nil
}

func (e *encoder) terms(ts []Term, depth int) error {
	for _, t := range ts {
		if err := e.term(t, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) atom(a Atom) error {
	if !utf8.ValidString(string(a)) {
		return bad(a, "atom is not UTF-8")
	}
	if len(a) > maxAtomChars && utf8.RuneCountInString(string(a)) > maxAtomChars {
		return bad(a, "atom longer than 255 characters")
	}
	if len(a) <= 0xff {
		e.u8(tagSmallAtomUTF8)
		e.u8(byte(len(a)))
	} else {
		e.u8(tagAtomUTF8)
		e.u16(len(a))
	}
	e.buf = append(e.buf, a...)
	return nil
}

func (e *encoder) int(v int64) {
	switch {
	case v >= 0 && v <= 0xff:
		e.u8(tagSmallInteger)
		e.u8(byte(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		e.u8(tagInteger)
		e.u32(uint32(int32(v)))
	default:
		m := uint64(v)
		sign := byte(0)
		if v < 0 {
			m, sign = -m, 1
		}
		var le [8]byte
		n := 0
		for ; m > 0; m >>= 8 {
			le[n] = byte(m)
			n++
		}
		e.u8(tagSmallBig)
		e.u8(byte(n))
		e.u8(sign)
		e.buf = append(e.buf, le[:n]...)
	}
}

func (e *encoder) big(x Big) error {
	if x.V == nil {
		return bad(x, "Big with nil value")
	}
	if x.V.IsInt64() {
		e.int(x.V.Int64())
		return nil
	}
	be := x.V.Bytes() // magnitude, big-endian
	if uint64(len(be)) > math.MaxUint32 {
		return bad(x, "bignum too large")
	}
	if len(be) <= 0xff {
		e.u8(tagSmallBig)
		e.u8(byte(len(be)))
	} else {
		e.u8(tagLargeBig)
		e.u32(uint32(len(be)))
	}
	if x.V.Sign() < 0 {
		e.u8(1)
	} else {
		e.u8(0)
	}
	for i := len(be) - 1; i >= 0; i-- {
		e.u8(be[i])
	}
	return nil
}

func (e *encoder) string(s String) error {
	switch {
	case len(s) == 0:
		e.u8(tagNil)
	case len(s) <= 0xffff:
		e.u8(tagString)
		e.u16(len(s))
		e.buf = append(e.buf, s...)
	default: // too long for STRING_EXT: a list of small integers
		if uint64(len(s)) > math.MaxUint32 {
			return bad(s, "string too long")
		}
		e.u8(tagList)
		e.u32(uint32(len(s)))
		for _, c := range s {
			e.u8(tagSmallInteger)
			e.u8(c)
		}
		e.u8(tagNil)
	}
	return nil
}

// list encodes a List; a nil Tail counts as Nil and a List with no
// elements is its tail.
func (e *encoder) list(l List, depth int) error {
	tail := l.Tail
	if tail == nil {
		tail = Nil{}
	}
	if len(l.Elems) == 0 {
		return e.term(tail, depth)
	}
	if uint64(len(l.Elems)) > math.MaxUint32 {
		return bad(l, "list too long")
	}
	e.u8(tagList)
	e.u32(uint32(len(l.Elems)))
	if err := e.terms(l.Elems, depth); err != nil {
		return err
	}
	return e.term(tail, depth+1)
}

func (e *encoder) pid(p Pid) error {
	e.u8(tagNewPid)
	if err := e.atom(p.Node); err != nil {
		return err
	}
	e.u32(p.ID)
	e.u32(p.Serial)
	e.u32(p.Creation)
	return nil
}

func (e *encoder) fun(f Fun, depth int) error {
	e.u8(tagNewFun)
	sizeAt := len(e.buf)
	e.u32(0) // Size, patched below
	e.u8(f.Arity)
	e.buf = append(e.buf, f.Uniq[:]...)
	e.u32(f.Index)
	e.u32(uint32(len(f.Free)))
	if err := e.atom(f.Module); err != nil {
		return err
	}
	for _, v := range []Term{f.OldIndex, f.OldUniq} {
		i, ok := v.(Int)
		if !ok || i < math.MinInt32 || i > math.MaxInt32 {
			return bad(f, "fun OldIndex/OldUniq must be a 32-bit Int")
		}
		e.int(int64(i))
	}
	if err := e.pid(f.Pid); err != nil {
		return err
	}
	if err := e.terms(f.Free, depth); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(e.buf[sizeAt:], uint32(len(e.buf)-sizeAt))
	return nil
}
