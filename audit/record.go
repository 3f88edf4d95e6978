package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
)

// MaxLineLen bounds one audit line in bytes, including the hash field and
// the newline. Append refuses larger records with ErrRecordTooLarge, and
// readers refuse longer lines.
const MaxLineLen = 1 << 20

// GenesisHash is the Prev of the first record of a log.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ErrNoSink is returned by a [Writer] with no Sink: a Gate fails.
var ErrNoSink = errors.New("audit: no audit sink configured")

// ErrRecordTooLarge is returned by Append for a record whose line would
// exceed MaxLineLen. The log stays usable; the caller must not forward.
var ErrRecordTooLarge = errors.New("audit: record too large")

// ErrTimeOutOfRange is returned by Append for a record whose Time is not
// within years 0000-9999, which RFC 3339 cannot represent.
var ErrTimeOutOfRange = errors.New("audit: record time outside years 0000-9999")

// Record is one audit line. The log assigns Seq, Prev and Hash, and Time
// when it is zero (stamped when the writer takes the record, so log-stamped
// times follow Seq order; caller-set times need not); callers fill in the
// rest. Field order in the JSON line
// is the field order here.
type Record struct {
	Time       time.Time `json:"time"` // RFC3339Nano, UTC
	Seq        uint64    `json:"seq"`  // assigned by the log, 1, 2, 3, ...
	Event      Event     `json:"event,omitempty"`
	Session    string    `json:"session,omitempty"`
	User       string    `json:"user,omitempty"`
	KeyID      string    `json:"key_id,omitempty"`
	CertSerial uint64    `json:"cert_serial,omitempty"`
	SourceAddr string    `json:"source_addr,omitempty"`
	Engineer   string    `json:"engineer,omitempty"` // engineer node
	Target     string    `json:"target,omitempty"`   // production node
	Cluster    string    `json:"cluster,omitempty"`
	Dir        Dir       `json:"dir,omitempty"`
	Op         string    `json:"op,omitempty"`  // e.g. "SPAWN_REQUEST", "REG_SEND"
	MFA        string    `json:"mfa,omitempty"` // e.g. "erlang:process_info/2"
	Dest       string    `json:"dest,omitempty"`
	Decision   Decision  `json:"decision,omitempty"`
	Write      bool      `json:"write,omitempty"`
	Rule       string    `json:"rule,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Size       int       `json:"size,omitempty"`
	Args       string    `json:"args,omitempty"` // bounded, redacted rendering by the caller
	BytesIn    int64     `json:"bytes_in,omitempty"`
	BytesOut   int64     `json:"bytes_out,omitempty"`
	MsgsIn     int64     `json:"msgs_in,omitempty"`
	MsgsOut    int64     `json:"msgs_out,omitempty"`

	Detail map[string]string `json:"detail,omitempty"` // small extras

	Prev string `json:"prev"` // hex hash of the previous record
	Hash string `json:"hash,omitempty"`
}

// MarshalLogObject implements zapcore.ObjectMarshaler. It writes the hashed
// body of the record: every field except Hash. Strings are made valid UTF-8
// first so that the line round-trips through JSON byte for byte.
func (r *Record) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("time", r.Time.UTC().Format(time.RFC3339Nano))
	enc.AddUint64("seq", r.Seq)
	addString(enc, "event", string(r.Event))
	addString(enc, "session", r.Session)
	addString(enc, "user", r.User)
	addString(enc, "key_id", r.KeyID)
	if r.CertSerial != 0 {
		enc.AddUint64("cert_serial", r.CertSerial)
	}
	addString(enc, "source_addr", r.SourceAddr)
	addString(enc, "engineer", r.Engineer)
	addString(enc, "target", r.Target)
	addString(enc, "cluster", r.Cluster)
	addString(enc, "dir", string(r.Dir))
	addString(enc, "op", r.Op)
	addString(enc, "mfa", r.MFA)
	addString(enc, "dest", r.Dest)
	addString(enc, "decision", string(r.Decision))
	if r.Write {
		enc.AddBool("write", true)
	}
	addString(enc, "rule", r.Rule)
	addString(enc, "reason", r.Reason)
	addInt64(enc, "size", int64(r.Size))
	addString(enc, "args", r.Args)
	addInt64(enc, "bytes_in", r.BytesIn)
	addInt64(enc, "bytes_out", r.BytesOut)
	addInt64(enc, "msgs_in", r.MsgsIn)
	addInt64(enc, "msgs_out", r.MsgsOut)
	if len(r.Detail) > 0 {
		if err := enc.AddObject("detail", detailObject(r.Detail)); err != nil {
			return err
		}
	}
	enc.AddString("prev", r.Prev)
	return nil
}

func addString(enc zapcore.ObjectEncoder, key, val string) {
	if val != "" {
		enc.AddString(key, validUTF8(val))
	}
}

// validUTF8 is strings.ToValidUTF8(s, "\uFFFD"), which returns s itself
// when it is valid; utf8.ValidString says so faster.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func addInt64(enc zapcore.ObjectEncoder, key string, val int64) {
	if val != 0 {
		enc.AddInt64(key, val)
	}
}

// detailObject encodes Record.Detail with sorted keys, so the encoding is
// deterministic.
type detailObject map[string]string

func (d detailObject) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		enc.AddString(validUTF8(k), validUTF8(d[k]))
	}
	return nil
}

// lineEncoder is the zap JSON encoder for audit lines: no level, time,
// message or caller keys, no line ending, and no sampler anywhere (it is
// used directly, never through a zap.Logger). EncodeEntry clones it, so
// concurrent use is safe.
var lineEncoder = zapcore.NewJSONEncoder(zapcore.EncoderConfig{SkipLineEnding: true})

const (
	hashFieldPrefix = `,"hash":"`
	// hashSuffixLen is the length of `,"hash":"<64 hex>"}` at the end of a line.
	hashSuffixLen = len(hashFieldPrefix) + sha256.Size*2 + len(`"}`)
)

// appendBody appends L, the hashed JSON body of r (no hash field, no newline).
func appendBody(dst []byte, r *Record) ([]byte, error) {
	buf, err := lineEncoder.EncodeEntry(zapcore.Entry{}, []zapcore.Field{{Type: zapcore.InlineMarshalerType, Interface: r}})
	if err != nil {
		return dst, fmt.Errorf("audit: encode record: %w", err)
	}
	dst = append(dst, buf.Bytes()...)
	buf.Free()
	return dst, nil
}

// chainHash returns hex(SHA-256(prev || body)).
func chainHash(prev string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(body)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// appendLine appends the full line for r (body, hash field, '\n') to dst,
// with r.Prev already set, and returns the record's hash. dst is returned
// unchanged with ErrRecordTooLarge if the line would exceed MaxLineLen, and
// with ErrTimeOutOfRange if r.Time cannot be written as RFC 3339.
func appendLine(dst []byte, r *Record) ([]byte, string, error) {
	if y := r.Time.UTC().Year(); y < 0 || y > 9999 {
		return dst, "", fmt.Errorf("%w: %d", ErrTimeOutOfRange, y)
	}
	start := len(dst)
	dst, err := appendBody(dst, r)
	if err != nil {
		return dst[:start], "", err
	}
	body := dst[start:]
	if len(body)+hashSuffixLen > MaxLineLen { // -1 for '}', +1 for '\n'
		return dst[:start], "", fmt.Errorf("%w: %d bytes encoded, limit %d", ErrRecordTooLarge, len(body), MaxLineLen)
	}
	hash := chainHash(r.Prev, body)
	dst = dst[:len(dst)-1] // drop the closing '}'
	dst = append(dst, hashFieldPrefix...)
	dst = append(dst, hash...)
	dst = append(dst, "\"}\n"...)
	return dst, hash, nil
}

// parseLine checks one line (without '\n') on its own: the trailing hash
// field, JSON validity, canonical form, the prev format, and that the hash
// matches hex(SHA-256(prev || body)) for the prev the line claims. It does
// not check the chain (Seq continuity, Prev linkage); Verify does. Lines
// in canonical form take a fast path (parseCanonical) that accepts exactly
// the lines, with the same records, that the encoding/json path accepts;
// everything else, and every error, comes from the encoding/json path.
func parseLine(line []byte) (Record, error) {
	cut, hash, err := splitHash(line)
	if err != nil {
		return Record{}, err
	}
	if r, ok := parseCanonical(line[:cut], hash); ok {
		return r, nil
	}
	return parseJSON(line[:cut], hash)
}

// parseLineJSON is parseLine without the fast path (for tests and
// benchmarks).
func parseLineJSON(line []byte) (Record, error) {
	cut, hash, err := splitHash(line)
	if err != nil {
		return Record{}, err
	}
	return parseJSON(line[:cut], hash)
}

// splitHash checks the trailing hash field of line and returns where it
// starts and the hash.
func splitHash(line []byte) (cut int, hash []byte, err error) {
	if len(line) < hashSuffixLen+1 {
		return 0, nil, errors.New("line too short to hold a record and its hash")
	}
	cut = len(line) - hashSuffixLen
	suffix := line[cut:]
	hash = suffix[len(hashFieldPrefix) : len(suffix)-2]
	if !bytes.HasPrefix(suffix, []byte(hashFieldPrefix)) || !bytes.HasSuffix(suffix, []byte(`"}`)) || !isHexHash(hash) {
		return 0, nil, errors.New(`line does not end with ,"hash":"<64 lowercase hex>"}`)
	}
	return cut, hash, nil
}

// parseJSON decodes and checks a line's body (up to its hash field) with
// encoding/json, whatever its form.
func parseJSON(head, hash []byte) (Record, error) {
	var r Record
	body := append(head[:len(head):len(head)], '}') // full slice expression: append copies
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("invalid JSON: %v", err)
	}
	if r.Hash != "" {
		return r, errors.New("hash field inside the hashed body")
	}
	if !isHexHash([]byte(r.Prev)) {
		return r, errors.New("prev is not 64 lowercase hex")
	}
	canon, err := appendBody(nil, &r)
	if err != nil {
		return r, err
	}
	if !bytes.Equal(canon, body) {
		return r, errors.New("record is not in canonical form (re-encoding differs)")
	}
	if got := chainHash(r.Prev, body); got != string(hash) {
		return r, fmt.Errorf("hash mismatch: line says %.12s…, content hashes to %.12s…", hash, got)
	}
	r.Hash = string(hash)
	return r, nil
}

func isHexHash(b []byte) bool {
	if len(b) != sha256.Size*2 {
		return false
	}
	for _, c := range b {
		if !lowerHex[c] {
			return false
		}
	}
	return true
}

// lowerHex says which bytes are lowercase hex digits.
var lowerHex = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdef") {
		t[c] = true
	}
	return t
}()
