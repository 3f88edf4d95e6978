package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
)

// The fast path of parseLine. A line the log wrote is in canonical form:
// the fields of Record in their order, no whitespace, zap's escaping. For
// such a line decodeCanonical decodes the body directly instead of through
// encoding/json's reflection (most of the cost of verification). It is
// only a decoder: the line is still accepted only if re-encoding the
// decoded record with the log's own encoder gives back the body byte for
// byte, and the hash matches. Whenever it meets anything else (another
// key order, whitespace, an escape zap does not write, a number it does
// not expect...), or either check fails, parseLine falls back to the
// encoding/json path, which alone produces the errors. So the two paths
// accept the same lines with the same records (FuzzParseLineFast checks it).

// field ordinals, in the order MarshalLogObject writes them.
const (
	fTime = iota + 1
	fSeq
	fEvent
	fSession
	fUser
	fKeyID
	fCertSerial
	fSourceAddr
	fEngineer
	fTarget
	fCluster
	fDir
	fOp
	fMFA
	fDest
	fDecision
	fWrite
	fRule
	fReason
	fSize
	fArgs
	fBytesIn
	fBytesOut
	fMsgsIn
	fMsgsOut
	fDetail
	fPrev
)

func fieldOf(key []byte) int {
	switch string(key) {
	case "time":
		return fTime
	case "seq":
		return fSeq
	case "event":
		return fEvent
	case "session":
		return fSession
	case "user":
		return fUser
	case "key_id":
		return fKeyID
	case "cert_serial":
		return fCertSerial
	case "source_addr":
		return fSourceAddr
	case "engineer":
		return fEngineer
	case "target":
		return fTarget
	case "cluster":
		return fCluster
	case "dir":
		return fDir
	case "op":
		return fOp
	case "mfa":
		return fMFA
	case "dest":
		return fDest
	case "decision":
		return fDecision
	case "write":
		return fWrite
	case "rule":
		return fRule
	case "reason":
		return fReason
	case "size":
		return fSize
	case "args":
		return fArgs
	case "bytes_in":
		return fBytesIn
	case "bytes_out":
		return fBytesOut
	case "msgs_in":
		return fMsgsIn
	case "msgs_out":
		return fMsgsOut
	case "detail":
		return fDetail
	case "prev":
		return fPrev
	}
	return 0 // "hash" and unknown keys: the slow path explains
}

// canonDecoder walks one body.
type canonDecoder struct {
	b   []byte
	i   int
	buf []byte // unescaping scratch
}

// decodeCanonical decodes body, a line's JSON body without its closing
// '}', if it is made of Record's keys in canonical order with values of
// the shapes the log writes; ok is false otherwise.
func decodeCanonical(body []byte) (r Record, ok bool) {
	d := canonDecoder{b: body}
	if !d.byte('{') {
		return r, false
	}
	last := 0
	for first := true; d.i < len(d.b); first = false {
		if !first && !d.byte(',') {
			return r, false
		}
		key, ok := d.plainString()
		if !ok || !d.byte(':') {
			return r, false
		}
		f := fieldOf(key)
		if f <= last {
			return r, false
		}
		last = f
		if !d.value(&r, f) {
			return r, false
		}
	}
	return r, last == fPrev
}

func (d *canonDecoder) byte(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *canonDecoder) value(r *Record, f int) bool {
	var ok bool
	switch f {
	case fTime:
		start := d.i
		if _, ok = d.plainString(); ok {
			ok = r.Time.UnmarshalJSON(d.b[start:d.i]) == nil
		}
	case fSeq:
		r.Seq, ok = d.uint()
	case fCertSerial:
		r.CertSerial, ok = d.uint()
	case fSize:
		var n int64
		n, ok = d.int()
		r.Size = int(n)
	case fBytesIn:
		r.BytesIn, ok = d.int()
	case fBytesOut:
		r.BytesOut, ok = d.int()
	case fMsgsIn:
		r.MsgsIn, ok = d.int()
	case fMsgsOut:
		r.MsgsOut, ok = d.int()
	case fWrite:
		if ok = bytes.HasPrefix(d.b[d.i:], []byte("true")); ok {
			d.i += 4
			r.Write = true
		}
	case fDetail:
		r.Detail, ok = d.detail()
	default:
		var s string
		if s, ok = d.string(); !ok {
			return false
		}
		switch f {
		case fEvent:
			r.Event = Event(s)
		case fSession:
			r.Session = s
		case fUser:
			r.User = s
		case fKeyID:
			r.KeyID = s
		case fSourceAddr:
			r.SourceAddr = s
		case fEngineer:
			r.Engineer = s
		case fTarget:
			r.Target = s
		case fCluster:
			r.Cluster = s
		case fDir:
			r.Dir = Dir(s)
		case fOp:
			r.Op = s
		case fMFA:
			r.MFA = s
		case fDest:
			r.Dest = s
		case fDecision:
			r.Decision = Decision(s)
		case fRule:
			r.Rule = s
		case fReason:
			r.Reason = s
		case fArgs:
			r.Args = s
		case fPrev:
			r.Prev = s
		}
	}
	return ok
}

// detail decodes a non-empty object of strings.
func (d *canonDecoder) detail() (map[string]string, bool) {
	if !d.byte('{') {
		return nil, false
	}
	m := map[string]string{}
	for first := true; ; first = false {
		if d.byte('}') {
			return m, !first
		}
		if !first && !d.byte(',') {
			return nil, false
		}
		k, ok := d.string()
		if !ok || !d.byte(':') {
			return nil, false
		}
		v, ok := d.string()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		m[k] = v
	}
}

// plainString returns the contents of a string without escapes, or
// !ok.
func (d *canonDecoder) plainString() ([]byte, bool) {
	if !d.byte('"') {
		return nil, false
	}
	start := d.i
	for ; d.i < len(d.b); d.i++ {
		switch c := d.b[d.i]; {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// string decodes a JSON string as encoding/json does, for the escapes
// zap writes (\" \\ \n \r \t \u00XX) and the others of JSON except
// surrogates; raw bytes must be valid UTF-8.
func (d *canonDecoder) string() (string, bool) {
	if !d.byte('"') {
		return "", false
	}
	start := d.i
	for ; d.i < len(d.b); d.i++ {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !utf8.Valid(s) {
				return "", false
			}
			return string(s), true
		case c == '\\':
			return d.escapedString(start)
		case c < 0x20:
			return "", false
		}
	}
	return "", false
}

func (d *canonDecoder) escapedString(start int) (string, bool) {
	buf := append(d.buf[:0], d.b[start:d.i]...)
	defer func() { d.buf = buf }()
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(buf) {
				return "", false
			}
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return "", false
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'u':
			if d.i+4 > len(d.b) {
				return "", false
			}
			var r rune
			for _, h := range d.b[d.i : d.i+4] {
				switch {
				case '0' <= h && h <= '9':
					r = r<<4 | rune(h-'0')
				case 'a' <= h && h <= 'f':
					r = r<<4 | rune(h-'a'+10)
				case 'A' <= h && h <= 'F':
					r = r<<4 | rune(h-'A'+10)
				default:
					return "", false
				}
			}
			if 0xD800 <= r && r <= 0xDFFF {
				return "", false // surrogates: leave them to encoding/json
			}
			d.i += 4
			buf = utf8.AppendRune(buf, r)
		default:
			return "", false
		}
	}
	return "", false
}

// uint decodes digits without a leading zero (but "0").
func (d *canonDecoder) uint() (uint64, bool) {
	start := d.i
	var n uint64
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		c := uint64(d.b[d.i] - '0')
		if n > (1<<64-1-c)/10 {
			return 0, false
		}
		n = n*10 + c
		d.i++
	}
	digits := d.i - start
	return n, digits > 0 && (digits == 1 || d.b[start] != '0')
}

// int decodes an optional '-' and digits, within int64.
func (d *canonDecoder) int() (int64, bool) {
	neg := d.byte('-')
	u, ok := d.uint()
	switch {
	case !ok:
		return 0, false
	case neg && u <= 1<<63:
		return int64(-u), true // -(1<<63) wraps to MinInt64
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

// parseCanonical is parseLine's fast path: body is the line up to (not
// including) the closing '}' of its hashed body, hash the hex hash the
// line ends with. ok is false when the slow path must decide.
func parseCanonical(body, hash []byte) (r Record, ok bool) {
	r, ok = decodeCanonical(body)
	if !ok || !isHexHash([]byte(r.Prev)) {
		return r, false
	}
	buf, err := lineEncoder.EncodeEntry(zapcore.Entry{}, []zapcore.Field{{Type: zapcore.InlineMarshalerType, Interface: &r}})
	if err != nil {
		return r, false
	}
	canon := buf.Bytes()
	same := len(canon) == len(body)+1 && canon[len(body)] == '}' && bytes.Equal(canon[:len(body)], body)
	buf.Free()
	if !same {
		return r, false
	}
	h := sha256.New()
	h.Write([]byte(r.Prev))
	h.Write(body)
	h.Write([]byte{'}'})
	var sum [sha256.Size]byte
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], h.Sum(sum[:0]))
	if !bytes.Equal(hx[:], hash) {
		return r, false
	}
	r.Hash = string(hash)
	return r, true
}
