package term

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
)

// Equal reports whether a and b are the same Erlang term (=:=), whatever
// their Go representation: a String equals the list of its bytes (and
// String("") equals Nil), [a|[b|c]] equals [a,b|c], a Big equals an Int
// of the same value, a BitBinary of 8 bits equals the Binary, and maps
// compare as sets of pairs. Floats compare with == (so 0.0 equals -0.0, as
// in OTP 25). A nil Term equals only nil; a nil List tail counts as Nil.
func Equal(a, b Term) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	switch x := a.(type) {
	case Atom:
		y, ok := b.(Atom)
		return ok && x == y
	case Int, Big:
		return intEqual(a, b)
	case Float:
		y, ok := b.(Float)
		return ok && x == y
	case Binary, BitBinary:
		return bitsEqual(a, b)
	case Nil, List, String:
		return listEqual(a, b)
	case Tuple:
		y, ok := b.(Tuple)
		return ok && termsEqual(x, y)
	case Map:
		y, ok := b.(Map)
		return ok && mapEqual(x, y)
	case Pid:
		y, ok := b.(Pid)
		return ok && x == y
	case Port:
		y, ok := b.(Port)
		return ok && x == y
	case Ref:
		y, ok := b.(Ref)
		return ok && x.Node == y.Node && x.Creation == y.Creation && slices.Equal(x.ID, y.ID)
	case Fun:
		y, ok := b.(Fun)
		return ok && x.Arity == y.Arity && x.Uniq == y.Uniq && x.Index == y.Index &&
			x.Module == y.Module && Equal(x.OldIndex, y.OldIndex) && Equal(x.OldUniq, y.OldUniq) &&
			x.Pid == y.Pid && termsEqual(x.Free, y.Free)
	case Export:
		y, ok := b.(Export)
		return ok && x == y
	}
	return false
}

func termsEqual(a, b []Term) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// intValue returns an integer term's value as int64 when it fits.
func intValue(t Term) (v int64, small, ok bool) {
	switch x := t.(type) {
	case Int:
		return int64(x), true, true
	case Big:
		if x.V == nil {
			return 0, false, false
		}
		if x.V.IsInt64() {
			return x.V.Int64(), true, true
		}
		return 0, false, true
	}
	return 0, false, false
}

func intEqual(a, b Term) bool {
	va, sa, oka := intValue(a)
	vb, sb, okb := intValue(b)
	if !oka || !okb || sa != sb {
		return false
	}
	if sa {
		return va == vb
	}
	return a.(Big).V.Cmp(b.(Big).V) == 0
}

// bitsView returns the significant bytes and bit count of a binary term,
// with unused trailing bits cleared in last.
func bitsView(t Term) (data []byte, last byte, bits uint8, ok bool) {
	switch x := t.(type) {
	case Binary:
		if len(x) == 0 {
			return nil, 0, 8, true
		}
		return x[:len(x)-1], x[len(x)-1], 8, true
	case BitBinary:
		if len(x.Data) == 0 || x.Bits == 0 || x.Bits > 8 {
			return nil, 0, 0, false
		}
		return x.Data[:len(x.Data)-1], x.Data[len(x.Data)-1] & (0xff << (8 - x.Bits)), x.Bits, true
	}
	return nil, 0, 0, false
}

func bitsEqual(a, b Term) bool {
	da, la, ba, oka := bitsView(a)
	db, lb, bb, okb := bitsView(b)
	if !oka || !okb || ba != bb || la != lb || len(da) != len(db) {
		return false
	}
	return string(da) == string(db) && isEmptyBinary(a) == isEmptyBinary(b)
}

func isEmptyBinary(t Term) bool {
	b, ok := t.(Binary)
	return ok && len(b) == 0
}

// listCursor walks the elements of a list-like term (List, String, Nil),
// following tails that are themselves lists.
type listCursor struct {
	cur Term
	i   int
}

// next returns the next element, or false when the rest (c.cur) is not a
// non-empty list: then c.cur is the tail (Nil for a proper list).
func (c *listCursor) next() (Term, bool) {
	for {
		switch v := c.cur.(type) {
		case List:
			if c.i < len(v.Elems) {
				c.i++
				return v.Elems[c.i-1], true
			}
			c.cur, c.i = v.Tail, 0
			if c.cur == nil {
				c.cur = Nil{}
			}
		case String:
			if c.i < len(v) {
				c.i++
				return Int(v[c.i-1]), true
			}
			c.cur, c.i = Nil{}, 0
		default:
			return nil, false
		}
	}
}

func listEqual(a, b Term) bool {
	ca, cb := listCursor{cur: a}, listCursor{cur: b}
	for {
		x, okx := ca.next()
		y, oky := cb.next()
		if okx != oky {
			return false
		}
		if !okx {
			break
		}
		if !Equal(x, y) {
			return false
		}
	}
	_, na := ca.cur.(Nil)
	_, nb := cb.cur.(Nil)
	if na || nb {
		return na && nb
	}
	return Equal(ca.cur, cb.cur)
}

// smallSet is the size up to which maps are compared pairwise.
const smallSet = 8

func mapEqual(a, b Map) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) <= smallSet {
		for _, p := range a {
			j := findKey(b, p.Key, nil, 0)
			if j < 0 || !Equal(p.Value, b[j].Value) {
				return false
			}
		}
		return true
	}
	hb := keyHashes(b)
	idx := make(map[uint64]int, len(b))
	for j, h := range hb {
		idx[h] = j
	}
	for _, p := range a {
		h := hashTerm(p.Key)
		j, ok := idx[h]
		if !ok {
			return false
		}
		if !Equal(p.Key, b[j].Key) {
			if j = findKey(b, p.Key, hb, h); j < 0 {
				return false
			}
		}
		if !Equal(p.Value, b[j].Value) {
			return false
		}
	}
	return true
}

// findKey returns the index of key in m, or -1. With hashes given, only
// pairs whose key hash is h are compared.
func findKey(m Map, key Term, hashes []uint64, h uint64) int {
	for j := range m {
		if hashes != nil && hashes[j] != h {
			continue
		}
		if Equal(m[j].Key, key) {
			return j
		}
	}
	return -1
}

func keyHashes(m Map) []uint64 {
	hs := make([]uint64, len(m))
	for i, p := range m {
		hs[i] = hashTerm(p.Key)
	}
	return hs
}

// duplicateKey returns the index of a key that repeats an earlier key, or -1.
func duplicateKey(m Map) int {
	if len(m) <= smallSet {
		for i := 1; i < len(m); i++ {
			if findKey(m[:i], m[i].Key, nil, 0) >= 0 {
				return i
			}
		}
		return -1
	}
	hs := keyHashes(m)
	seen := make(map[uint64]int, len(m))
	for i, h := range hs {
		j, ok := seen[h]
		if !ok {
			seen[h] = i
			continue
		}
		if Equal(m[j].Key, m[i].Key) || findKey(m[:i], m[i].Key, hs, h) >= 0 {
			return i
		}
	}
	return -1
}

var hashSeed = maphash.MakeSeed()

// hashTerm hashes t consistently with Equal: terms Equal reports equal
// hash alike. The seed is random per process, so an engineer cannot
// precompute colliding map keys.
func hashTerm(t Term) uint64 {
	var h maphash.Hash
	h.SetSeed(hashSeed)
	writeHash(&h, t)
	return h.Sum64()
}

func writeU64(h *maphash.Hash, kind byte, v uint64) {
	var b [9]byte
	b[0] = kind
	binary.LittleEndian.PutUint64(b[1:], v)
	h.Write(b[:])
}

func writeHash(h *maphash.Hash, t Term) {
	switch x := t.(type) {
	case nil:
		h.WriteByte(0)
	case Atom:
		writeU64(h, 'a', uint64(len(x)))
		h.WriteString(string(x))
	case Int, Big:
		v, small, _ := intValue(t)
		if small {
			writeU64(h, 'i', uint64(v))
			return
		}
		if x, ok := x.(Big); ok && x.V != nil {
			writeU64(h, 'B', uint64(x.V.Sign()+1))
			h.Write(x.V.Bytes())
		}
	case Float:
		f := float64(x)
		if f == 0 {
			f = 0 // -0.0 == 0.0
		}
		writeU64(h, 'f', math.Float64bits(f))
	case Binary, BitBinary:
		data, last, bits, _ := bitsView(t)
		writeU64(h, 'b', uint64(len(data))<<8|uint64(bits))
		h.Write(data)
		if !isEmptyBinary(t) {
			h.WriteByte(last)
		}
	case Nil, List, String:
		c := listCursor{cur: t}
		for {
			e, ok := c.next()
			if !ok {
				break
			}
			h.WriteByte('c')
			writeHash(h, e)
		}
		if _, ok := c.cur.(Nil); ok {
			h.WriteByte('n')
		} else {
			writeHash(h, c.cur)
		}
	case Tuple:
		writeU64(h, 't', uint64(len(x)))
		for _, e := range x {
			writeHash(h, e)
		}
	case Map:
		// Order-independent: sum of per-pair hashes.
		var sum uint64
		for _, p := range x {
			var ph maphash.Hash
			ph.SetSeed(hashSeed)
			writeHash(&ph, p.Key)
			writeHash(&ph, p.Value)
			sum += ph.Sum64()
		}
		writeU64(h, 'm', uint64(len(x)))
		writeU64(h, 'M', sum)
	case Pid:
		writePid(h, x)
	case Port:
		writeU64(h, 'o', x.ID)
		writeU64(h, 'O', uint64(x.Creation))
		h.WriteString(string(x.Node))
	case Ref:
		writeU64(h, 'r', uint64(len(x.ID))<<32|uint64(x.Creation))
		for _, w := range x.ID {
			writeU64(h, 'w', uint64(w))
		}
		h.WriteString(string(x.Node))
	case Fun:
		writeU64(h, 'F', uint64(x.Index)<<8|uint64(x.Arity))
		h.Write(x.Uniq[:])
		h.WriteString(string(x.Module))
		writeHash(h, x.OldIndex)
		writeHash(h, x.OldUniq)
		writePid(h, x.Pid)
		for _, e := range x.Free {
			writeHash(h, e)
		}
	case Export:
		writeU64(h, 'e', uint64(x.Arity))
		writeU64(h, 'E', uint64(len(x.Module)))
		h.WriteString(string(x.Module))
		h.WriteString(string(x.Function))
	}
}

func writePid(h *maphash.Hash, p Pid) {
	writeU64(h, 'p', uint64(p.ID)<<32|uint64(p.Serial))
	writeU64(h, 'P', uint64(p.Creation))
	h.WriteString(string(p.Node))
}
