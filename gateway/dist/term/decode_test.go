package term

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"runtime"
	"strings"
	"testing"
)

// b builds an encoded term from pieces: bytes, strings and ints (as bytes).
func b(parts ...any) []byte {
	var out []byte
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			out = append(out, byte(v))
		case rune:
			out = append(out, byte(v))
		case byte:
			out = append(out, v)
		case string:
			out = append(out, v...)
		case []byte:
			out = append(out, v...)
		default:
			panic("bad part")
		}
	}
	return out
}

func u16(v int) []byte    { return []byte{byte(v >> 8), byte(v)} }
func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// sa is a SMALL_ATOM_UTF8.
func sa(s string) []byte { return b(119, len(s), s) }

func bigOf(s string) Big {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return Big{V: v}
}

func TestDecodeTags(t *testing.T) {
	node := sa("prod@host")
	tests := []struct {
		name string
		in   []byte
		want Term
	}{
		{"small integer", b(131, 97, 200), Int(200)},
		{"integer", b(131, 98, u32(0xfffffffe)), Int(-2)},
		{"new float", b(131, 70, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0), Float(1.5)},
		{"legacy float", b(131, 99, "1.50000000000000000000e+00", make([]byte, 5)), Float(1.5)},
		{"legacy float no exponent", b(131, 99, "-2.5", make([]byte, 27)), Float(-2.5)},
		{"atom latin1", b(131, 100, u16(2), 0xe9, 'a'), Atom("éa")},
		{"small atom latin1", b(131, 115, 2, "os"), Atom("os")},
		{"atom utf8", b(131, 118, u16(3), "cmd"), Atom("cmd")},
		{"small atom utf8", b(131, 119, 4, "😀"), Atom("😀")},
		{"empty atom", b(131, 119, 0), Atom("")},
		{"small tuple", b(131, 104, 2, sa("ok"), 97, 1), Tuple{Atom("ok"), Int(1)}},
		{"large tuple", b(131, 105, u32(1), 106), Tuple{Nil{}}},
		{"empty tuple", b(131, 104, 0), Tuple{}},
		{"nil", b(131, 106), Nil{}},
		{"string", b(131, 107, u16(2), "hi"), String("hi")},
		{"empty string is nil", b(131, 107, u16(0)), Nil{}},
		{"proper list", b(131, 108, u32(2), 97, 1, 97, 2, 106), List{Elems: []Term{Int(1), Int(2)}, Tail: Nil{}}},
		{"improper list", b(131, 108, u32(1), sa("alias"), 90, u16(3), node, u32(1), u32(1), u32(2), u32(3)),
			List{Elems: []Term{Atom("alias")}, Tail: Ref{Node: "prod@host", Creation: 1, ID: []uint32{1, 2, 3}}}},
		{"empty list is its tail", b(131, 108, u32(0), sa("a")), Atom("a")},
		{"empty list of nil", b(131, 108, u32(0), 106), Nil{}},
		{"list tail merged", b(131, 108, u32(1), 97, 1, 108, u32(1), 97, 2, sa("t")),
			List{Elems: []Term{Int(1), Int(2)}, Tail: Atom("t")}},
		{"string tail merged", b(131, 108, u32(1), 97, 1, 107, u16(1), "a"), List{Elems: []Term{Int(1), Int(97)}, Tail: Nil{}}},
		{"binary", b(131, 109, u32(3), "abc"), Binary("abc")},
		{"empty binary", b(131, 109, u32(0)), Binary{}},
		{"bit binary", b(131, 77, u32(2), 3, 1, 0xff), BitBinary{Data: []byte{1, 0xe0}, Bits: 3}},
		{"bit binary of 8 bits", b(131, 77, u32(1), 8, 7), Binary{7}},
		{"empty bit binary", b(131, 77, u32(0), 0), Binary{}},
		{"small big", b(131, 110, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x80), bigOf("9223372036854775808")},
		{"small big min int64", b(131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0x80), Int(math.MinInt64)},
		{"small big fits", b(131, 110, 2, 1, 1, 1), Int(-257)},
		{"small big non-canonical", b(131, 110, 3, 0, 5, 0, 0), Int(5)},
		{"small big zero length", b(131, 110, 0, 0), Int(0)},
		{"large big", b(131, 111, u32(9), 1, 0, 0, 0, 0, 0, 0, 0, 0, 1), bigOf("-18446744073709551616")},
		{"map", b(131, 116, u32(2), sa("a"), 97, 1, 104, 1, sa("b"), 109, u32(1), "x"),
			Map{{Atom("a"), Int(1)}, {Tuple{Atom("b")}, Binary("x")}}},
		{"new pid", b(131, 88, node, u32(87), u32(0), u32(5)), Pid{Node: "prod@host", ID: 87, Creation: 5}},
		{"legacy pid", b(131, 103, node, u32(87), u32(1), 2), Pid{Node: "prod@host", ID: 87, Serial: 1, Creation: 2}},
		{"new port", b(131, 89, node, u32(9), u32(5)), Port{Node: "prod@host", ID: 9, Creation: 5}},
		{"legacy port", b(131, 102, node, u32(9), 1), Port{Node: "prod@host", ID: 9, Creation: 1}},
		{"v4 port", b(131, 120, node, 0, 0, 0, 1, 0, 0, 0, 0, u32(5)), Port{Node: "prod@host", ID: 1 << 32, Creation: 5}},
		{"newer reference", b(131, 90, u16(5), node, u32(5), u32(1), u32(2), u32(3), u32(4), u32(5)),
			Ref{Node: "prod@host", Creation: 5, ID: []uint32{1, 2, 3, 4, 5}}},
		{"new reference", b(131, 114, u16(1), node, 3, u32(7)), Ref{Node: "prod@host", Creation: 3, ID: []uint32{7}}},
		{"reference", b(131, 101, node, u32(7), 3), Ref{Node: "prod@host", Creation: 3, ID: []uint32{7}}},
		{"export", b(131, 113, sa("os"), sa("cmd"), 97, 1), Export{Module: "os", Function: "cmd", Arity: 1}},
		{"latin1 node", b(131, 88, 100, u16(4), "a@b\xe9", u32(1), u32(0), u32(0)), Pid{Node: "a@bé", ID: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Unmarshal(tc.in, nil)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !Equal(got, tc.want) {
				t.Fatalf("got %s (%#v), want %s", Format(got, 200), got, Format(tc.want, 200))
			}
			n, err := Skip(tc.in, nil, nil)
			if err != nil || n != len(tc.in) {
				t.Fatalf("Skip = %d, %v; want %d", n, err, len(tc.in))
			}
			assertRoundTrip(t, got)
		})
	}
}

func TestDecodeFun(t *testing.T) {
	want := Fun{Arity: 1, Index: 3, Module: "erl_eval", OldIndex: Int(3), OldUniq: Int(123456),
		Pid: Pid{Node: "n@h", ID: 1, Creation: 2}, Free: []Term{Atom("x"), Int(1)}}
	for i := range want.Uniq {
		want.Uniq[i] = byte(i)
	}
	enc, err := Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(got, want) {
		t.Fatalf("got %#v", got)
	}
	// A size field that disagrees with the fun's real length is refused.
	bad := bytes.Clone(enc)
	bad[4]++
	if _, err := Unmarshal(bad, nil); !errors.Is(err, ErrBadValue) && !errors.Is(err, ErrTruncated) {
		t.Fatalf("bad size: %v", err)
	}
}

func assertRoundTrip(t *testing.T, v Term) {
	t.Helper()
	enc, err := Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%s): %v", Format(v, 200), err)
	}
	back, err := Unmarshal(enc, nil)
	if err != nil {
		t.Fatalf("Unmarshal(Marshal(%s)): %v", Format(v, 200), err)
	}
	if !Equal(back, v) {
		t.Fatalf("round trip: %s became %s", Format(v, 200), Format(back, 200))
	}
}

func TestDecodeRejects(t *testing.T) {
	node := sa("n@h")
	long := strings.Repeat("a", 256)
	tests := []struct {
		name string
		in   []byte
		kind error
	}{
		{"empty", b(), ErrTruncated},
		{"version", b(130, 106), ErrVersion},
		{"no tag", b(131), ErrTruncated},
		{"compressed", b(131, 80, u32(10), 0x78, 0x9c), ErrCompressed},
		{"local ext", b(131, 121, u32(0), 106), ErrLocalExt},
		{"fun ext", b(131, 117, u32(0)), ErrFunExt},
		{"atom cache ref", b(131, 82, 0), ErrAtomCacheRef},
		{"unknown tag", b(131, 1), ErrUnknownTag},
		{"distribution header", b(131, 68, 0), ErrUnknownTag},
		{"atom not utf8", b(131, 119, 1, 0xff), ErrBadAtom},
		{"atom surrogate", b(131, 119, 3, 0xed, 0xa0, 0x80), ErrBadAtom},
		{"atom too long", b(131, 118, u16(256), long), ErrBadAtom},
		{"latin1 atom too long", b(131, 100, u16(256), long), ErrBadAtom},
		{"truncated atom", b(131, 119, 5, "ab"), ErrTruncated},
		{"truncated integer", b(131, 98, 0, 0), ErrTruncated},
		{"truncated list", b(131, 108, u32(2), 97, 1), ErrTruncated},
		{"list without tail", b(131, 108, u32(1), 97, 1), ErrTruncated},
		{"huge list", b(131, 108, u32(1<<31)), ErrLimit},
		{"list beyond input", b(131, 108, u32(1000), 106), ErrTruncated},
		{"huge tuple", b(131, 105, u32(0xffffffff)), ErrLimit},
		{"tuple beyond input", b(131, 104, 3, 106), ErrTruncated},
		{"huge map", b(131, 116, u32(0x7fffffff)), ErrLimit},
		{"map beyond input", b(131, 116, u32(3), 106, 106), ErrTruncated},
		{"huge binary", b(131, 109, u32(0xffffffff)), ErrLimit},
		{"binary beyond input", b(131, 109, u32(10), "abc"), ErrTruncated},
		{"huge bignum", b(131, 111, u32(0xffffffff), 0), ErrLimit},
		{"bignum beyond input", b(131, 110, 9, 0, 1), ErrTruncated},
		{"string beyond input", b(131, 107, u16(10), "abc"), ErrTruncated},
		{"nan", b(131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0), ErrBadValue},
		{"inf", b(131, 70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0), ErrBadValue},
		{"legacy float garbage", b(131, 99, "1.5x", make([]byte, 27)), ErrBadValue},
		{"legacy float inf", b(131, 99, "1.0e400", make([]byte, 24)), ErrBadValue},
		{"legacy float no fraction", b(131, 99, "5", make([]byte, 30)), ErrBadValue},
		{"ref of 0 words", b(131, 90, u16(0), node, u32(0)), ErrBadValue},
		{"ref of 6 words", b(131, 90, u16(6), node, u32(0), make([]byte, 24)), ErrBadValue},
		{"pid node not atom", b(131, 88, 97, 1, u32(1), u32(0), u32(0)), ErrBadValue},
		{"pid node cached atom", b(131, 88, 82, 1, u32(1), u32(0), u32(0)), ErrAtomCacheRef},
		{"port node not atom", b(131, 89, 106, u32(1), u32(0)), ErrBadValue},
		{"duplicate map key", b(131, 116, u32(2), sa("a"), 97, 1, 100, u16(1), "a", 97, 2), ErrBadValue},
		{"duplicate map key string/list", b(131, 116, u32(2), 107, u16(1), "a", 97, 1, 108, u32(1), 97, 'a', 106, 97, 2), ErrBadValue},
		{"bit binary 0 bits", b(131, 77, u32(1), 0, 1), ErrBadValue},
		{"bit binary 9 bits", b(131, 77, u32(1), 9, 1), ErrBadValue},
		{"empty bit binary with bits", b(131, 77, u32(0), 8), ErrBadValue},
		{"export arity not small int", b(131, 113, sa("os"), sa("cmd"), 98, u32(1)), ErrBadValue},
		{"fun truncated", b(131, 112, u32(100), 1), ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal(tc.in, nil)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("Unmarshal error %v, want kind %v", err, tc.kind)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FormatError", err)
			}
			if _, err := Skip(tc.in, nil, nil); !errors.Is(err, tc.kind) {
				t.Fatalf("Skip error %v, want kind %v", err, tc.kind)
			}
		})
	}
}

func TestUnmarshalTrailingBytes(t *testing.T) {
	in := b(131, 106, 0)
	if _, err := Unmarshal(in, nil); !errors.Is(err, ErrTrailingBytes) {
		t.Fatalf("got %v", err)
	}
	v, n, err := Decode(in, nil)
	if err != nil || n != 2 || !Equal(v, Nil{}) {
		t.Fatalf("Decode = %v, %d, %v", v, n, err)
	}
}

func TestLimits(t *testing.T) {
	nested := func(depth int) []byte {
		out := []byte{131}
		for range depth {
			out = append(out, 108, 0, 0, 0, 1)
		}
		out = append(out, 106)
		for range depth {
			out = append(out, 106)
		}
		return out
	}
	if _, err := Unmarshal(nested(100), nil); err != nil {
		t.Fatalf("depth 100: %v", err)
	}
	if _, err := Unmarshal(nested(101), nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("depth 101: %v", err)
	}
	if _, err := Unmarshal(nested(200_000), nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("depth 200000: %v", err)
	}
	if _, err := Skip(nested(200_000), nil, nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("skip depth 200000: %v", err)
	}
	lim := &Limits{MaxElements: 3}
	if _, err := Unmarshal(b(131, 104, 3, 106, 106, 106), lim); err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(b(131, 104, 2, 104, 2, 106, 106, 106), lim); !errors.Is(err, ErrLimit) {
		t.Fatalf("4 elements under a budget of 3: %v", err)
	}
	if _, err := Unmarshal(b(131, 109, u32(5), "hello"), &Limits{MaxBinary: 4}); !errors.Is(err, ErrLimit) {
		t.Fatalf("binary limit: %v", err)
	}
	if _, err := Unmarshal(b(131, 119, 3, "abc"), &Limits{MaxAtomLen: 2}); !errors.Is(err, ErrBadAtom) {
		t.Fatalf("atom limit: %v", err)
	}
	// 255 characters of 4 bytes each is a legal atom.
	a := strings.Repeat("😀", 255)
	if _, err := Unmarshal(b(131, 118, u16(len(a)), a), nil); err != nil {
		t.Fatalf("255 emoji: %v", err)
	}
	if _, err := Unmarshal(b(131, 110, 2, 0, 1, 1), &Limits{MaxBigBytes: 1}); !errors.Is(err, ErrLimit) {
		t.Fatalf("bignum limit: %v", err)
	}
}

// A few bytes declaring 2^31 elements must fail before allocating.
func TestHugeCountsDoNotAllocate(t *testing.T) {
	for _, in := range [][]byte{
		b(131, 108, u32(1<<31)),
		b(131, 105, u32(1<<31)),
		b(131, 116, u32(1<<31)),
		b(131, 109, u32(1<<31)),
		b(131, 108, u32(1<<19), 106),
		b(131, 116, u32(1<<18), 106),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			if _, _, err := Decode(in, nil); err == nil {
				t.Fatal("accepted")
			}
		}
		runtime.ReadMemStats(&after)
		if perRun := (after.TotalAlloc - before.TotalAlloc) / 10; perRun > 1024 { // the error only
			t.Errorf("% x: %d bytes allocated per decode", in, perRun)
		}
	}
}

func TestSkipReportsAtoms(t *testing.T) {
	in := b(131, 104, 3, sa("erpc"), 88, sa("n@h"), u32(1), u32(0), u32(0), 108, u32(1), 115, 3, "foo", 113, sa("os"), sa("cmd"), 97, 1)
	var got []string
	n, err := Skip(in, nil, func(a Atom) { got = append(got, string(a)) })
	if err != nil || n != len(in) {
		t.Fatalf("Skip = %d, %v", n, err)
	}
	if strings.Join(got, ",") != "erpc,n@h,foo,os,cmd" {
		t.Fatalf("atoms %v", got)
	}
}

func TestSkipDoesNotAllocate(t *testing.T) {
	in, err := Marshal(largeList())
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := Skip(in, nil, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Skip allocated %v times", allocs)
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, v := range []Term{
		nil,
		Atom(strings.Repeat("a", 256)),
		Atom("\xff"),
		Tuple{nil},
		Float(math.NaN()),
		Float(math.Inf(-1)),
		BitBinary{Data: []byte{1}, Bits: 0},
		BitBinary{Data: []byte{1}, Bits: 9},
		BitBinary{Bits: 3},
		Ref{Node: "a@b"},
		Ref{Node: "a@b", ID: make([]uint32, 6)},
		Big{},
		Export{Module: "m", Function: "f", Arity: 256},
		Map{{Atom("a"), Int(1)}, {Atom("a"), Int(2)}},
		Pid{Node: "\xff"},
		Fun{Module: "m", OldIndex: Atom("x"), OldUniq: Int(0)},
	} {
		if out, err := Append([]byte{1}, v); !errors.Is(err, ErrBadValue) || !bytes.Equal(out, []byte{1}) {
			t.Errorf("Append(%#v) = %v, %v", v, out, err)
		}
	}
}

func TestEncodeCanonical(t *testing.T) {
	tests := []struct {
		v    Term
		want []byte
	}{
		{Int(0), b(97, 0)},
		{Int(255), b(97, 255)},
		{Int(256), b(98, u32(256))},
		{Int(-1), b(98, u32(0xffffffff))},
		{Int(math.MaxInt32 + 1), b(110, 4, 0, 0, 0, 0, 0x80)},
		{Int(math.MinInt64), b(110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0x80)},
		{Big{V: big.NewInt(5)}, b(97, 5)},
		{Atom("ok"), b(119, 2, "ok")},
		{Atom(strings.Repeat("é", 200)), b(118, u16(400), strings.Repeat("é", 200))},
		{String(""), b(106)},
		{List{Elems: []Term{Int(1)}}, b(108, u32(1), 97, 1, 106)},
		{List{Tail: Atom("x")}, b(119, 1, "x")},
		{Port{Node: "a", ID: 5}, b(89, sa("a"), u32(5), u32(0))},
		{Port{Node: "a", ID: 1 << 40}, b(120, sa("a"), 0, 0, 1, 0, 0, 0, 0, 0, u32(0))},
		{Pid{Node: "a", ID: 1, Serial: 2, Creation: 3}, b(88, sa("a"), u32(1), u32(2), u32(3))},
		{BitBinary{Data: []byte{0xff}, Bits: 1}, b(77, u32(1), 1, 0x80)},
	}
	for _, tc := range tests {
		got, err := AppendBody(nil, tc.v)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("AppendBody(%s) = % x, %v; want % x", Format(tc.v, 100), got, err, tc.want)
		}
	}
}

func TestEqual(t *testing.T) {
	same := [][2]Term{
		{String("ab"), List{Elems: []Term{Int('a'), Int('b')}, Tail: Nil{}}},
		{String(""), Nil{}},
		{List{Elems: []Term{Int(1)}, Tail: List{Elems: []Term{Int(2)}, Tail: Atom("t")}}, List{Elems: []Term{Int(1), Int(2)}, Tail: Atom("t")}},
		{Big{V: big.NewInt(7)}, Int(7)},
		{BitBinary{Data: []byte{1, 2}, Bits: 8}, Binary{1, 2}},
		{BitBinary{Data: []byte{0xff}, Bits: 1}, BitBinary{Data: []byte{0x80}, Bits: 1}},
		{Map{{Atom("a"), Int(1)}, {Atom("b"), Int(2)}}, Map{{Atom("b"), Int(2)}, {Atom("a"), Int(1)}}},
	}
	for _, p := range same {
		if !Equal(p[0], p[1]) || !Equal(p[1], p[0]) {
			t.Errorf("%s should equal %s", Format(p[0], 80), Format(p[1], 80))
		}
		if hashTerm(p[0]) != hashTerm(p[1]) {
			t.Errorf("%s and %s hash differently", Format(p[0], 80), Format(p[1], 80))
		}
	}
	differ := [][2]Term{
		{Int(1), Float(1)},
		{Atom("a"), Binary("a")},
		{Binary{}, BitBinary{Data: []byte{0}, Bits: 1}},
		{List{Elems: []Term{Int(1)}, Tail: Nil{}}, List{Elems: []Term{Int(1)}, Tail: Atom("x")}},
		{Tuple{Int(1)}, Tuple{Int(1), Int(2)}},
		{Map{{Atom("a"), Int(1)}}, Map{{Atom("a"), Int(2)}}},
		{Ref{Node: "a", ID: []uint32{1}}, Ref{Node: "a", ID: []uint32{1, 0}}},
	}
	for _, p := range differ {
		if Equal(p[0], p[1]) || Equal(p[1], p[0]) {
			t.Errorf("%s should differ from %s", Format(p[0], 80), Format(p[1], 80))
		}
	}
	// Large maps take the hashed path.
	var m1, m2 Map
	for i := range 100 {
		m1 = append(m1, Pair{Int(i), Int(i * 2)})
		m2 = append(m2, Pair{Int(99 - i), Int((99 - i) * 2)})
	}
	if !Equal(m1, m2) {
		t.Error("large maps in different order should be equal")
	}
	m2[0].Value = Int(-1)
	if Equal(m1, m2) {
		t.Error("large maps with a different value should differ")
	}
	dup := append(Map{}, m1...)
	dup = append(dup, Pair{Int(50), Int(0)})
	if duplicateKey(dup) != 100 || duplicateKey(m1) != -1 {
		t.Error("duplicateKey on a large map")
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		v    Term
		max  int
		want string
	}{
		{Tuple{Atom("ok"), Atom("Hello"), Atom("a b"), Atom("end"), Atom("it's")}, 0, `{ok,'Hello','a b','end','it\'s'}`},
		{List{Elems: []Term{Atom("alias")}, Tail: Ref{Node: "p@h", ID: []uint32{1, 2, 3}}}, 0, `[alias|#Ref<p@h.1.2.3>]`},
		{Binary("hello"), 0, `<<"hello">>`},
		{Binary{1, 2, 200}, 0, `<<1,2,200>>`},
		{BitBinary{Data: []byte{1, 0xa0}, Bits: 3}, 0, `<<1,5:3>>`},
		{String("hi\n"), 0, `"hi\n"`},
		{String{1, 2}, 0, `[1,2]`},
		{Map{{Atom("k"), Float(1.5)}}, 0, `#{k => 1.5}`},
		{Float(1e21), 0, `1.0e21`},
		{Int(-3), 0, `-3`},
		{bigOf("123456789012345678901234567890"), 0, `123456789012345678901234567890`},
		{Pid{Node: "prod@host", ID: 87}, 0, `#Pid<prod@host.87.0>`},
		{Port{Node: "prod@host", ID: 5}, 0, `#Port<prod@host.5>`},
		{Export{Module: "os", Function: "cmd", Arity: 1}, 0, `fun os:cmd/1`},
		{Fun{Module: "erl_eval", Index: 6, OldUniq: Int(42)}, 0, `#Fun<erl_eval.6.42>`},
		{Nil{}, 0, `[]`},
		{Binary(strings.Repeat("x", 1<<20)), 12, `<<"xxxxxx...`},
		{MakeList(Int(1), Int(2), Int(3), Int(4), Int(5), Int(6)), 8, `[1,2,...`},
	}
	for _, tc := range tests {
		got := Format(tc.v, tc.max)
		if got != tc.want {
			t.Errorf("Format = %s, want %s", got, tc.want)
		}
		if tc.max > 0 && len(got) > tc.max {
			t.Errorf("Format %q longer than %d", got, tc.max)
		}
	}
}

func TestWalk(t *testing.T) {
	v := Tuple{Atom("a"), List{Elems: []Term{Int(1)}, Tail: Atom("t")}, Map{{Atom("k"), Tuple{Atom("skip"), Atom("hidden")}}},
		Fun{Pid: Pid{Node: "n"}, Free: []Term{Atom("free")}}}
	var seen []string
	Walk(v, func(t Term) bool {
		seen = append(seen, Format(t, 20))
		_, isTuple := t.(Tuple)
		return !isTuple || len(seen) == 1
	})
	want := "{a,[1|t],#{k => {...|a|[1|t]|1|t|#{k => {skip,hidd...|k|{skip,hidden}|#Fun<''.0.<nil>>|#Pid<n.0.0>|free"
	if got := strings.Join(seen, "|"); got != want {
		t.Fatalf("walk order:\n%s\nwant\n%s", got, want)
	}
}

// execCallArgs is what erpc:call(Node, observer_backend, sys_info, [])
// puts in a SPAWN_REQUEST: [Ref, observer_backend, sys_info, []].
func execCallArgs() []byte {
	return b(131, 108, u32(4),
		90, u16(3), sa("engineer@laptop"), u32(0x6553_0001), u32(1), u32(2), u32(3),
		119, 16, "observer_backend", 119, 8, "sys_info", 106, 106)
}

func largeList() Term {
	elems := make([]Term, 10000)
	for i := range elems {
		elems[i] = Tuple{Atom("ok"), Int(i), Binary("payload"), Pid{Node: "prod@host", ID: uint32(i)}}
	}
	return MakeList(elems...)
}

func BenchmarkDecodeExecuteCallArgs(b *testing.B) {
	in := execCallArgs()
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, _, err := Decode(in, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeLargeList(b *testing.B) {
	in, _ := Marshal(largeList())
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, _, err := Decode(in, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSkipLargeList(b *testing.B) {
	in, _ := Marshal(largeList())
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Skip(in, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendLargeList(b *testing.B) {
	v := largeList()
	buf, _ := Marshal(v)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
}
