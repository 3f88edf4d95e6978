package term

import (
	"encoding/binary"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// Decode decodes one term from src, which starts with the version byte
// 131. n is the number of bytes consumed, including the version byte.
// lim bounds the work; nil means DefaultLimits. Every failure is a
// *FormatError.
func Decode(src []byte, lim *Limits) (t Term, n int, err error) {
	d := decoder{src: src, build: true}
	d.init(lim)
	t, err = d.top()
	if err != nil {
		return nil, 0, err
	}
	return t, d.off, nil
}

// Unmarshal decodes src, which must hold exactly one term (with its
// version byte) and nothing after it.
func Unmarshal(src []byte, lim *Limits) (Term, error) {
	t, n, err := Decode(src, lim)
	if err != nil {
		return nil, err
	}
	if n != len(src) {
		return nil, &FormatError{Off: n, Kind: ErrTrailingBytes, Detail: strconv.Itoa(len(src)-n) + " bytes after the term"}
	}
	return t, nil
}

// Skip validates one term starting at the version byte without building
// it and returns its length. It accepts exactly what Decode accepts, with
// the same n. onAtom, when not nil, is called for every atom in the term
// (including pid/port/reference nodes, fun modules and export names).
// Skip allocates nothing beyond onAtom's argument, except for map keys,
// which it builds to detect duplicates.
func Skip(src []byte, lim *Limits, onAtom func(Atom)) (n int, err error) {
	d := decoder{src: src, onAtom: onAtom}
	return d.skip(lim)
}

// SkipAtoms is Skip for callers that look most atoms up rather than keep
// them: fn gets each atom's UTF-8 text in a slice that is only valid during
// the call, so scanning a large term allocates nothing.
func SkipAtoms(src []byte, lim *Limits, fn func(utf8 []byte)) (n int, err error) {
	d := decoder{src: src, onAtomBytes: fn}
	return d.skip(lim)
}

func (d *decoder) skip(lim *Limits) (n int, err error) {
	d.init(lim)
	if _, err := d.top(); err != nil {
		return 0, err
	}
	return d.off, nil
}

// decoder walks one encoded term. With build set it returns the Term;
// without, it only validates (Skip). The two modes share every check, so
// they accept exactly the same inputs.
type decoder struct {
	src    []byte
	off    int
	lim    Limits
	budget int // elements still allowed
	depth  int
	build  bool
	onAtom func(Atom)
	// onAtomBytes, for SkipAtoms, gets each atom's UTF-8 text without an
	// allocation; the slice is only valid during the call.
	onAtomBytes func([]byte)

	lastAtom  Atom // the last non-interned atom, reused for repeated node names
	lastBoxed Term // lastAtom as a Term, once needed
}

func (d *decoder) init(lim *Limits) {
	d.lim = lim.resolve()
	d.budget = d.lim.MaxElements
}

func (d *decoder) top() (Term, error) {
	if len(d.src) == 0 {
		return nil, d.fail(0, 0, ErrTruncated, "empty input")
	}
	if d.src[0] != Version {
		return nil, d.fail(0, 0, ErrVersion, "first byte "+strconv.Itoa(int(d.src[0])))
	}
	d.off = 1
	return d.term()
}

func (d *decoder) fail(tag byte, off int, kind error, detail string) *FormatError {
	return &FormatError{Tag: tag, Off: off, Kind: kind, Detail: detail}
}

func (d *decoder) rem() int { return len(d.src) - d.off }

// need checks that n more bytes are present.
func (d *decoder) need(n int, tag byte, start int) error {
	if n < 0 || n > d.rem() {
		return d.fail(tag, start, ErrTruncated, "need "+strconv.Itoa(n)+" bytes, have "+strconv.Itoa(d.rem()))
	}
	return nil
}

func (d *decoder) u8() byte {
	b := d.src[d.off]
	d.off++
	return b
}

func (d *decoder) u16() int {
	v := binary.BigEndian.Uint16(d.src[d.off:])
	d.off += 2
	return int(v)
}

func (d *decoder) u32() uint32 {
	v := binary.BigEndian.Uint32(d.src[d.off:])
	d.off += 4
	return v
}

// count reads a 32-bit count of items each at least minBytes long (plus
// trailing bytes that must follow), charges cost*count against the element
// budget and checks the bytes remain, all before anything is allocated.
func (d *decoder) count(tag byte, start, width, minBytes, cost, trailing int) (int, error) {
	if err := d.need(width, tag, start); err != nil {
		return 0, err
	}
	var n int
	switch width {
	case 1:
		n = int(d.u8())
	case 2:
		n = d.u16()
	default:
		n = int(d.u32())
	}
	if n*cost > d.budget {
		return 0, d.fail(tag, start, ErrLimit, strconv.Itoa(n)+" elements exceed the element budget")
	}
	if err := d.need(n*minBytes+trailing, tag, start); err != nil {
		return 0, err
	}
	d.budget -= n * cost
	return n, nil
}

func (d *decoder) enter(tag byte, start int) error {
	d.depth++
	if d.depth > d.lim.MaxDepth {
		return d.fail(tag, start, ErrLimit, "nesting deeper than "+strconv.Itoa(d.lim.MaxDepth))
	}
	return nil
}

func (d *decoder) term() (Term, error) {
	start := d.off
	if d.rem() < 1 {
		return nil, d.fail(0, start, ErrTruncated, "missing tag")
	}
	tag := d.u8()
	switch tag {
	case tagSmallInteger:
		if err := d.need(1, tag, start); err != nil {
			return nil, err
		}
		v := d.u8()
		if !d.build {
			return nil, nil
		}
		return Int(v), nil
	case tagInteger:
		if err := d.need(4, tag, start); err != nil {
			return nil, err
		}
		v := int32(d.u32())
		if !d.build {
			return nil, nil
		}
		return Int(v), nil
	case tagNewFloat:
		if err := d.need(8, tag, start); err != nil {
			return nil, err
		}
		f := math.Float64frombits(binary.BigEndian.Uint64(d.src[d.off:]))
		d.off += 8
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, d.fail(tag, start, ErrBadValue, "non-finite float")
		}
		if !d.build {
			return nil, nil
		}
		return Float(f), nil
	case tagFloat:
		return d.legacyFloat(start)
	case tagAtom, tagSmallAtom, tagAtomUTF8, tagSmallAtomUTF8:
		d.off = start
		a, boxed, err := d.atom()
		if err != nil || !d.build || boxed != nil {
			return boxed, err
		}
		boxed = a
		if a == d.lastAtom {
			d.lastBoxed = boxed
		}
		return boxed, nil
	case tagSmallTuple, tagLargeTuple:
		return d.tuple(tag, start)
	case tagNil:
		if !d.build {
			return nil, nil
		}
		return Nil{}, nil
	case tagString:
		n, err := d.count(tag, start, 2, 1, 0, 0)
		if err != nil {
			return nil, err
		}
		b := d.src[d.off : d.off+n]
		d.off += n
		if !d.build {
			return nil, nil
		}
		if n == 0 {
			return Nil{}, nil
		}
		return String(append([]byte(nil), b...)), nil
	case tagList:
		return d.list(start)
	case tagBinary:
		return d.binary(tag, start)
	case tagBitBinary:
		return d.binary(tag, start)
	case tagSmallBig, tagLargeBig:
		return d.bignum(tag, start)
	case tagMap:
		return d.mapTerm(start)
	case tagNewPid, tagPid:
		d.off = start
		p, err := d.pid()
		if err != nil || !d.build {
			return nil, err
		}
		return p, nil
	case tagNewPort, tagPort, tagV4Port:
		return d.port(tag, start)
	case tagNewerReference, tagNewReference, tagReference:
		return d.ref(tag, start)
	case tagNewFun:
		return d.fun(start)
	case tagExport:
		return d.export(start)
	case tagCompressed:
		return nil, d.fail(tag, start, ErrCompressed, "")
	case tagLocal:
		return nil, d.fail(tag, start, ErrLocalExt, "")
	case tagFun:
		return nil, d.fail(tag, start, ErrFunExt, "")
	case tagAtomCacheRef:
		return nil, d.fail(tag, start, ErrAtomCacheRef, "no distribution header in scope")
	}
	return nil, d.fail(tag, start, ErrUnknownTag, "")
}

// legacyFloat decodes FLOAT_EXT: 31 bytes of "%.20e" text, NUL padded.
// Only the shape Erlang itself accepts is allowed: -?D+.D+([eE][+-]?D+)?
func (d *decoder) legacyFloat(start int) (Term, error) {
	if err := d.need(31, tagFloat, start); err != nil {
		return nil, err
	}
	raw := d.src[d.off : d.off+31]
	d.off += 31
	end := 0
	for end < len(raw) && raw[end] != 0 {
		end++
	}
	txt := raw[:end]
	if end == len(raw) || !legacyFloatShape(txt) { // Erlang needs a NUL within the 31 bytes
		return nil, d.fail(tagFloat, start, ErrBadValue, "malformed float text")
	}
	f, err := strconv.ParseFloat(string(txt), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, d.fail(tagFloat, start, ErrBadValue, "float text out of range")
	}
	if !d.build {
		return nil, nil
	}
	return Float(f), nil
}

func legacyFloatShape(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	if digits() == 0 || i >= len(s) || s[i] != '.' {
		return false
	}
	i++
	if digits() == 0 {
		return false
	}
	if i == len(s) {
		return true
	}
	if s[i] != 'e' && s[i] != 'E' {
		return false
	}
	i++
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	return digits() > 0 && i == len(s)
}

// atom decodes an atom at d.off; any other tag is ErrBadValue (pid, port
// and reference nodes, fun modules and export names must be atoms).
// boxed is a as a Term when that costs no allocation (interned atoms),
// nil otherwise; nothing is returned when neither building nor reporting.
func (d *decoder) atom() (a Atom, boxed Term, err error) {
	start := d.off
	if d.rem() < 1 {
		return "", nil, d.fail(0, start, ErrTruncated, "missing atom")
	}
	tag := d.u8()
	var n int
	switch tag {
	case tagSmallAtom, tagSmallAtomUTF8:
		if err := d.need(1, tag, start); err != nil {
			return "", nil, err
		}
		n = int(d.u8())
	case tagAtom, tagAtomUTF8:
		if err := d.need(2, tag, start); err != nil {
			return "", nil, err
		}
		n = d.u16()
	case tagAtomCacheRef:
		return "", nil, d.fail(tag, start, ErrAtomCacheRef, "no distribution header in scope")
	default:
		return "", nil, d.fail(tag, start, ErrBadValue, "expected an atom")
	}
	if err := d.need(n, tag, start); err != nil {
		return "", nil, err
	}
	b := d.src[d.off : d.off+n]
	d.off += n
	latin1 := tag == tagAtom || tag == tagSmallAtom
	if latin1 {
		if n > d.lim.MaxAtomLen {
			return "", nil, d.fail(tag, start, ErrBadAtom, "longer than "+strconv.Itoa(d.lim.MaxAtomLen)+" characters")
		}
		if !isASCII(b) {
			// Rare (deprecated tag, non-ASCII text): a heap buffer here
			// keeps the common path free of a stack buffer that callbacks
			// would make escape.
			u := make([]byte, 0, 2*n)
			for _, c := range b {
				u = utf8.AppendRune(u, rune(c))
			}
			b = u
		}
	} else {
		if !utf8.Valid(b) {
			return "", nil, d.fail(tag, start, ErrBadAtom, "not UTF-8")
		}
		if n > d.lim.MaxAtomLen && utf8.RuneCount(b) > d.lim.MaxAtomLen {
			return "", nil, d.fail(tag, start, ErrBadAtom, "longer than "+strconv.Itoa(d.lim.MaxAtomLen)+" characters")
		}
	}
	if !d.build && d.onAtomBytes != nil {
		d.onAtomBytes(b)
		return "", nil, nil
	}
	if !d.build && d.onAtom == nil {
		return "", nil, nil
	}
	if d.onAtomBytes != nil {
		d.onAtomBytes(b) // a map key, built to detect duplicates
	}
	a, boxed = d.makeAtom(b)
	if d.onAtom != nil {
		d.onAtom(a)
	}
	return a, boxed, nil
}

func (d *decoder) makeAtom(b []byte) (Atom, Term) {
	if t, ok := internedAtoms[string(b)]; ok {
		return t.(Atom), t
	}
	if d.lastBoxed != nil && string(b) == string(d.lastAtom) {
		return d.lastAtom, d.lastBoxed
	}
	if len(b) > 0 && string(b) == string(d.lastAtom) {
		return d.lastAtom, nil
	}
	d.lastAtom, d.lastBoxed = Atom(b), nil
	return d.lastAtom, nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func (d *decoder) tuple(tag byte, start int) (Term, error) {
	width := 1
	if tag == tagLargeTuple {
		width = 4
	}
	n, err := d.count(tag, start, width, 1, 1, 0)
	if err != nil {
		return nil, err
	}
	if err := d.enter(tag, start); err != nil {
		return nil, err
	}
	var tp Tuple
	if d.build {
		tp = make(Tuple, n)
	}
	for i := 0; i < n; i++ {
		e, err := d.term()
		if err != nil {
			return nil, err
		}
		if d.build {
			tp[i] = e
		}
	}
	d.depth--
	if !d.build {
		return nil, nil
	}
	return tp, nil
}

// list decodes LIST_EXT. A tail that is itself a LIST_EXT or STRING_EXT
// is merged, so [a|[b|c]] and [a,b|c] decode alike; a LIST_EXT of zero
// elements decodes to its tail, as binary_to_term does.
func (d *decoder) list(start int) (Term, error) {
	if err := d.enter(tagList, start); err != nil {
		return nil, err
	}
	var elems []Term
	var tail Term
	for {
		n, err := d.count(tagList, start, 4, 1, 1, 1)
		if err != nil {
			return nil, err
		}
		if d.build {
			if elems == nil {
				elems = make([]Term, 0, n)
			} else {
				elems = growTerms(elems, n)
			}
		}
		for i := 0; i < n; i++ {
			e, err := d.term()
			if err != nil {
				return nil, err
			}
			if d.build {
				elems = append(elems, e)
			}
		}
		start = d.off
		if d.rem() < 1 {
			return nil, d.fail(tagList, start, ErrTruncated, "missing list tail")
		}
		switch d.src[d.off] {
		case tagList:
			d.off++
			continue
		case tagNil:
			d.off++
			tail = Nil{}
		case tagString:
			d.off++
			k, err := d.count(tagString, start, 2, 1, 1, 0)
			if err != nil {
				return nil, err
			}
			if d.build {
				elems = growTerms(elems, k)
				for _, c := range d.src[d.off : d.off+k] {
					elems = append(elems, Int(c))
				}
			}
			d.off += k
			tail = Nil{}
		default:
			tail, err = d.term()
			if err != nil {
				return nil, err
			}
		}
		break
	}
	d.depth--
	if !d.build {
		return nil, nil
	}
	if len(elems) == 0 {
		return tail, nil
	}
	return List{Elems: elems, Tail: tail}, nil
}

func growTerms(s []Term, n int) []Term {
	if cap(s)-len(s) >= n {
		return s
	}
	g := make([]Term, len(s), len(s)+n)
	copy(g, s)
	return g
}

func (d *decoder) binary(tag byte, start int) (Term, error) {
	hdr := 4
	if tag == tagBitBinary {
		hdr = 5
	}
	if err := d.need(hdr, tag, start); err != nil {
		return nil, err
	}
	n64 := uint64(d.u32())
	var bits byte = 8
	if tag == tagBitBinary {
		bits = d.u8()
	}
	if n64 > uint64(d.lim.MaxBinary) {
		return nil, d.fail(tag, start, ErrLimit, strconv.FormatUint(n64, 10)+"-byte binary")
	}
	n := int(n64)
	if err := d.need(n, tag, start); err != nil {
		return nil, err
	}
	if tag == tagBitBinary && ((n == 0 && bits != 0) || (n > 0 && (bits == 0 || bits > 8))) {
		return nil, d.fail(tag, start, ErrBadValue, "bit count "+strconv.Itoa(int(bits)))
	}
	data := d.src[d.off : d.off+n]
	d.off += n
	if !d.build {
		return nil, nil
	}
	out := make([]byte, n)
	copy(out, data)
	if n == 0 || bits == 8 {
		return Binary(out), nil
	}
	out[n-1] &= byte(0xff) << (8 - bits)
	return BitBinary{Data: out, Bits: bits}, nil
}

func (d *decoder) bignum(tag byte, start int) (Term, error) {
	width := 1
	if tag == tagLargeBig {
		width = 4
	}
	if err := d.need(width+1, tag, start); err != nil {
		return nil, err
	}
	var n64 uint64
	if width == 1 {
		n64 = uint64(d.u8())
	} else {
		n64 = uint64(d.u32())
	}
	neg := d.u8() != 0
	if n64 > uint64(d.lim.MaxBigBytes) {
		return nil, d.fail(tag, start, ErrLimit, strconv.FormatUint(n64, 10)+"-byte bignum")
	}
	n := int(n64)
	if err := d.need(n, tag, start); err != nil {
		return nil, err
	}
	digits := d.src[d.off : d.off+n] // little-endian magnitude
	d.off += n
	if !d.build {
		return nil, nil
	}
	return bigFromLE(digits, neg), nil
}

// bigFromLE turns a little-endian magnitude and sign into Int when it
// fits in an int64, Big otherwise.
func bigFromLE(digits []byte, neg bool) Term {
	top := len(digits)
	for top > 0 && digits[top-1] == 0 {
		top--
	}
	digits = digits[:top]
	if len(digits) <= 8 {
		var m uint64
		for i := len(digits) - 1; i >= 0; i-- {
			m = m<<8 | uint64(digits[i])
		}
		switch {
		case !neg && m <= math.MaxInt64:
			return Int(m)
		case neg && m <= 1<<63:
			return Int(-int64(m-1) - 1)
		}
	}
	be := make([]byte, len(digits))
	for i, c := range digits {
		be[len(be)-1-i] = c
	}
	v := new(big.Int).SetBytes(be)
	if neg {
		v.Neg(v)
	}
	return Big{V: v}
}

func (d *decoder) mapTerm(start int) (Term, error) {
	n, err := d.count(tagMap, start, 4, 2, 2, 0)
	if err != nil {
		return nil, err
	}
	if err := d.enter(tagMap, start); err != nil {
		return nil, err
	}
	// Keys are built in both modes: duplicate keys are detected by value.
	m := make(Map, n)
	build := d.build
	for i := range m {
		d.build = true
		k, err := d.term()
		d.build = build
		if err != nil {
			return nil, err
		}
		v, err := d.term()
		if err != nil {
			return nil, err
		}
		m[i] = Pair{Key: k, Value: v}
	}
	if i := duplicateKey(m); i >= 0 {
		return nil, d.fail(tagMap, start, ErrBadValue, "duplicate map key "+Format(m[i].Key, 80))
	}
	d.depth--
	if !d.build {
		return nil, nil
	}
	return m, nil
}

// node decodes the node atom of a pid, port or reference.
func (d *decoder) node() (Atom, error) {
	a, _, err := d.atom()
	return a, err
}

// pid decodes NEW_PID_EXT or PID_EXT at d.off.
func (d *decoder) pid() (Pid, error) {
	start := d.off
	if d.rem() < 1 {
		return Pid{}, d.fail(0, start, ErrTruncated, "missing pid")
	}
	tag := d.u8()
	if tag != tagNewPid && tag != tagPid {
		return Pid{}, d.fail(tag, start, ErrBadValue, "expected a pid")
	}
	node, err := d.node()
	if err != nil {
		return Pid{}, err
	}
	creWidth := 4
	if tag == tagPid {
		creWidth = 1
	}
	if err := d.need(8+creWidth, tag, start); err != nil {
		return Pid{}, err
	}
	p := Pid{Node: node, ID: d.u32(), Serial: d.u32()}
	if creWidth == 1 {
		p.Creation = uint32(d.u8())
	} else {
		p.Creation = d.u32()
	}
	return p, nil
}

func (d *decoder) port(tag byte, start int) (Term, error) {
	node, err := d.node()
	if err != nil {
		return nil, err
	}
	idWidth, creWidth := 4, 4
	switch tag {
	case tagV4Port:
		idWidth = 8
	case tagPort:
		creWidth = 1
	}
	if err := d.need(idWidth+creWidth, tag, start); err != nil {
		return nil, err
	}
	p := Port{Node: node}
	if idWidth == 8 {
		p.ID = binary.BigEndian.Uint64(d.src[d.off:])
		d.off += 8
	} else {
		p.ID = uint64(d.u32())
	}
	if creWidth == 1 {
		p.Creation = uint32(d.u8())
	} else {
		p.Creation = d.u32()
	}
	if !d.build {
		return nil, nil
	}
	return p, nil
}

func (d *decoder) ref(tag byte, start int) (Term, error) {
	n := 1
	if tag != tagReference {
		if err := d.need(2, tag, start); err != nil {
			return nil, err
		}
		n = d.u16()
		if n < 1 || n > 5 {
			return nil, d.fail(tag, start, ErrBadValue, "reference of "+strconv.Itoa(n)+" words")
		}
	}
	node, err := d.node()
	if err != nil {
		return nil, err
	}
	creWidth := 4
	if tag != tagNewerReference {
		creWidth = 1
	}
	if tag == tagReference {
		// REFERENCE_EXT: Node, ID:32, Creation:8.
		if err := d.need(5, tag, start); err != nil {
			return nil, err
		}
		id := d.u32()
		cre := uint32(d.u8())
		if !d.build {
			return nil, nil
		}
		return Ref{Node: node, Creation: cre, ID: []uint32{id}}, nil
	}
	if err := d.need(creWidth+4*n, tag, start); err != nil {
		return nil, err
	}
	r := Ref{Node: node}
	if creWidth == 1 {
		r.Creation = uint32(d.u8())
	} else {
		r.Creation = d.u32()
	}
	if !d.build {
		d.off += 4 * n
		return nil, nil
	}
	r.ID = make([]uint32, n)
	for i := range r.ID {
		r.ID[i] = d.u32()
	}
	return r, nil
}

// smallInt decodes the SMALL_INTEGER or INTEGER of a fun's OldIndex and
// OldUniq fields.
func (d *decoder) smallInt() (Term, error) {
	start := d.off
	if d.rem() < 1 {
		return nil, d.fail(0, start, ErrTruncated, "missing integer")
	}
	if tag := d.src[start]; tag != tagSmallInteger && tag != tagInteger {
		return nil, d.fail(tag, start, ErrBadValue, "expected a small integer")
	}
	return d.term()
}

func (d *decoder) fun(start int) (Term, error) {
	// Size:32 Arity:8 Uniq:16 Index:32, then NumFree:32 (read by count).
	const fixed = 4 + 1 + 16 + 4 + 4
	if err := d.need(fixed-4, tagNewFun, start); err != nil {
		return nil, err
	}
	sizeAt := d.off
	size := int(d.u32())
	if size < fixed {
		return nil, d.fail(tagNewFun, start, ErrBadValue, "size field "+strconv.Itoa(size))
	}
	if err := d.need(size-4, tagNewFun, start); err != nil {
		return nil, err
	}
	f := Fun{Arity: d.u8()}
	copy(f.Uniq[:], d.src[d.off:d.off+16])
	d.off += 16
	f.Index = d.u32()
	nfree, err := d.count(tagNewFun, start, 4, 1, 1, 0)
	if err != nil {
		return nil, err
	}
	if f.Module, err = d.node(); err != nil {
		return nil, err
	}
	if f.OldIndex, err = d.smallInt(); err != nil {
		return nil, err
	}
	if f.OldUniq, err = d.smallInt(); err != nil {
		return nil, err
	}
	if f.Pid, err = d.pid(); err != nil {
		return nil, err
	}
	if err := d.enter(tagNewFun, start); err != nil {
		return nil, err
	}
	if d.build && nfree > 0 {
		f.Free = make([]Term, nfree)
	}
	for i := 0; i < nfree; i++ {
		v, err := d.term()
		if err != nil {
			return nil, err
		}
		if d.build {
			f.Free[i] = v
		}
	}
	d.depth--
	if d.off-sizeAt != size {
		return nil, d.fail(tagNewFun, start, ErrBadValue, "size field "+strconv.Itoa(size)+" but fun is "+strconv.Itoa(d.off-sizeAt)+" bytes")
	}
	if !d.build {
		return nil, nil
	}
	return f, nil
}

func (d *decoder) export(start int) (Term, error) {
	m, err := d.node()
	if err != nil {
		return nil, err
	}
	fn, err := d.node()
	if err != nil {
		return nil, err
	}
	if err := d.need(2, tagExport, start); err != nil {
		return nil, err
	}
	if d.src[d.off] != tagSmallInteger {
		return nil, d.fail(tagExport, start, ErrBadValue, "arity must be a SMALL_INTEGER")
	}
	d.off++
	arity := int(d.u8())
	if !d.build {
		return nil, nil
	}
	return Export{Module: m, Function: fn, Arity: arity}, nil
}
