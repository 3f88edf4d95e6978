package term

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Format renders t in Erlang syntax for audit logs, cut to at most max
// bytes (the cut ends in "..."); max <= 0 means no limit.
//
// Atoms are quoted when Erlang would quote them; binaries print as
// <<"text">> when every byte is printable ASCII and as <<1,2,3>> (or
// <<1,2,5:3>> for a bit binary) otherwise; STRING_EXT strings print as
// "text" when printable. Identifiers carry their node name, unquoted, so
// an audit line says where they live: #Pid<prod@host.87.0> (node, ID,
// serial), #Port<prod@host.5>, #Ref<prod@host.1.2.3>, and a closure
// #Fun<module.Index.OldUniq>; an export prints as fun m:f/2.
func Format(t Term, max int) string {
	f := formatter{max: max}
	f.term(t)
	if f.cut {
		keep := max - 3
		if keep < 0 {
			keep = 0
		}
		b := f.buf[:keep]
		for len(b) > 0 && !utf8.Valid(b) { // do not split a UTF-8 sequence
			b = b[:len(b)-1]
		}
		return string(b) + "..."[:min(3, max)]
	}
	return string(f.buf)
}

type formatter struct {
	buf []byte
	max int
	cut bool
}

func (f *formatter) full() bool {
	if f.max > 0 && len(f.buf) > f.max {
		f.cut = true
	}
	return f.cut
}

func (f *formatter) s(s string) { f.buf = append(f.buf, s...) }

func (f *formatter) term(t Term) {
	if f.full() {
		return
	}
	switch x := t.(type) {
	case nil:
		f.s("<nil>")
	case Atom:
		f.buf = appendAtom(f.buf, x)
	case Int:
		f.buf = strconv.AppendInt(f.buf, int64(x), 10)
	case Big:
		if x.V == nil {
			f.s("<nil>")
		} else {
			f.buf = x.V.Append(f.buf, 10)
		}
	case Float:
		f.buf = appendFloat(f.buf, float64(x))
	case Binary:
		f.binary(x, 8)
	case BitBinary:
		f.binary(x.Data, x.Bits)
	case String:
		if s, clipped := f.clip(x); printable(s) {
			f.buf = appendQuoted(f.buf, string(s), '"')
			f.cut = f.cut || clipped
			f.full()
			return
		}
		f.list(t)
	case Nil, List:
		f.list(t)
	case Tuple:
		f.s("{")
		f.seq(x)
		f.s("}")
	case Map:
		f.s("#{")
		for i, p := range x {
			if i > 0 {
				f.s(",")
			}
			f.term(p.Key)
			f.s(" => ")
			f.term(p.Value)
			if f.full() {
				return
			}
		}
		f.s("}")
	case Pid:
		f.pid(x)
	case Port:
		f.s("#Port<" + string(x.Node) + ".")
		f.buf = strconv.AppendUint(f.buf, x.ID, 10)
		f.s(">")
	case Ref:
		f.s("#Ref<" + string(x.Node))
		for _, w := range x.ID {
			f.s(".")
			f.buf = strconv.AppendUint(f.buf, uint64(w), 10)
		}
		f.s(">")
	case Fun:
		f.s("#Fun<")
		f.buf = appendAtom(f.buf, x.Module)
		f.s("." + strconv.FormatUint(uint64(x.Index), 10) + ".")
		f.term(x.OldUniq)
		f.s(">")
	case Export:
		f.s("fun ")
		f.buf = appendAtom(f.buf, x.Module)
		f.s(":")
		f.buf = appendAtom(f.buf, x.Function)
		f.s("/" + strconv.Itoa(x.Arity))
	default:
		f.s("<?>")
	}
	f.full()
}

func (f *formatter) seq(ts []Term) {
	for i, e := range ts {
		if i > 0 {
			f.s(",")
		}
		f.term(e)
		if f.full() {
			return
		}
	}
}

func (f *formatter) list(t Term) {
	f.s("[")
	c := listCursor{cur: t}
	for n := 0; ; n++ {
		e, ok := c.next()
		if !ok {
			break
		}
		if n > 0 {
			f.s(",")
		}
		f.term(e)
		if f.full() {
			return
		}
	}
	if _, ok := c.cur.(Nil); !ok {
		f.s("|")
		f.term(c.cur)
	}
	f.s("]")
}

func (f *formatter) pid(p Pid) {
	f.s("#Pid<" + string(p.Node) + ".")
	f.buf = strconv.AppendUint(f.buf, uint64(p.ID), 10)
	f.s(".")
	f.buf = strconv.AppendUint(f.buf, uint64(p.Serial), 10)
	f.s(">")
}

// clip shortens b to what can still be shown, so that formatting a 64 MiB
// binary costs only max bytes.
func (f *formatter) clip(b []byte) ([]byte, bool) {
	if room := f.max - len(f.buf) + 1; f.max > 0 && len(b) > room {
		return b[:max(room, 0)], true
	}
	return b, false
}

func (f *formatter) binary(b []byte, bits uint8) {
	b, clipped := f.clip(b)
	if clipped {
		bits = 8
		defer func() { f.cut = true }()
	}
	if bits == 8 && len(b) > 0 && printable(b) {
		f.s("<<")
		f.buf = appendQuoted(f.buf, string(b), '"')
		f.s(">>")
		return
	}
	f.s("<<")
	for i, c := range b {
		if i > 0 {
			f.s(",")
		}
		if i == len(b)-1 && bits < 8 {
			f.buf = strconv.AppendUint(f.buf, uint64(c>>(8-bits)), 10)
			f.s(":" + strconv.Itoa(int(bits)))
		} else {
			f.buf = strconv.AppendUint(f.buf, uint64(c), 10)
		}
		if f.full() {
			return
		}
	}
	f.s(">>")
}

func printable(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\n' && c != '\t' {
			return false
		}
	}
	return true
}

// appendAtom writes a as Erlang source would: bare when it is a lowercase
// identifier that is not a reserved word, in single quotes otherwise.
func appendAtom(dst []byte, a Atom) []byte {
	if bareAtom(string(a)) {
		return append(dst, a...)
	}
	return appendQuoted(dst, string(a), '\'')
}

var reservedWords = map[string]bool{
	"after": true, "and": true, "andalso": true, "band": true, "begin": true, "bnot": true,
	"bor": true, "bsl": true, "bsr": true, "bxor": true, "case": true, "catch": true,
	"cond": true, "div": true, "else": true, "end": true, "fun": true, "if": true, "let": true,
	"maybe": true, "not": true, "of": true, "or": true, "orelse": true, "receive": true,
	"rem": true, "try": true, "when": true, "xor": true,
}

func bareAtom(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' || reservedWords[s] {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '@') {
			return false
		}
	}
	return true
}

func appendQuoted(dst []byte, s string, q byte) []byte {
	dst = append(dst, q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, `\n`...)
		case r == '\t':
			dst = append(dst, `\t`...)
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			dst = append(dst, `\x{`...)
			dst = strconv.AppendInt(dst, int64(r), 16)
			dst = append(dst, '}')
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, q)
}

// appendFloat writes f the way Erlang's io_lib prints floats: shortest
// round-trip digits, always with a fraction ("1.0", "1.5e-7").
func appendFloat(dst []byte, f float64) []byte {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	mant, exp, hasExp := strings.Cut(s, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	dst = append(dst, mant...)
	if hasExp {
		dst = append(dst, 'e')
		dst = append(dst, strings.TrimPrefix(exp, "+")...)
	}
	return dst
}
