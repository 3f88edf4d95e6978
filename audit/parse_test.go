package audit

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

// relayRecord is a record as the relay writes one for an allowed call:
// every identity field, the MFA and ~150 bytes of rendered arguments.
func relayRecord() *Record {
	return &Record{
		Time: time.Date(2026, 11, 25, 14, 45, 3, 123456789, time.UTC), Seq: 123456,
		Event: EventMessage, Session: "5f0c2a9e41b7-9a8b7c6d5e4f", User: "alice",
		KeyID: "SHA256:q3Vx2m9Yc0TQpL7rB1n8ZkJ5dW4eH6aFsGuIoPyRtXE", SourceAddr: "10.20.30.40:51234",
		Engineer: "eng_1@laptop-alice", Target: "prismatic@prod-01", Cluster: "prismatic",
		Dir: DirE2P, Op: "SPAWN_REQUEST", MFA: "erlang:process_info/2", Decision: DecisionAllow,
		Rule: "readonly.erlang", Size: 290,
		Args: `[<0.4242.0>, [memory, message_queue_len, current_function, registered_name, status, reductions, heap_size, stack_size]]`,
		Prev: "9f2c4b7e1a0d3c5f6e8b9a7d2c1e0f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e",
	}
}

// lineOf is the line the log writes for r, without its '\n'.
func lineOf(tb testing.TB, r *Record) []byte {
	tb.Helper()
	line, _, err := appendLine(nil, r)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSuffix(line, []byte("\n"))
}

// writtenRecords are records of every shape the log writes: every field,
// strings needing each of zap's escapes, invalid UTF-8 (written as
// U+FFFD), extreme numbers and times, details.
func writtenRecords() []*Record {
	full := relayRecord()
	full.CertSerial, full.Dest, full.Write, full.Reason = math.MaxUint64, "<0.1.0>", true, "why \"not\""
	full.BytesIn, full.BytesOut, full.MsgsIn, full.MsgsOut = math.MinInt64, math.MaxInt64, -1, 1
	full.Detail = map[string]string{"b": "2", "a": "1", "": "empty key", "\u00e9\t": "\x01\x1f\x7f"}
	escapes := relayRecord()
	escapes.Args = "[<<\"quote\\\" and \n newline\r\t \x00 \x1b \u2028 \u2029 <>& \u00e9 \U0001F600 \xff\xfe bad>>]"
	escapes.User = "\xc3\x28" // invalid UTF-8: written as \ufffd(
	cp := &Record{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Seq: 9, Event: EventCheckpoint, Decision: DecisionInfo,
		Detail: Checkpoint{LogID: "0123456789abcdef0123456789abcdef", Replica: "bastion-1", Seq: 8, Head: GenesisHash,
			At: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), KeyID: "ed25519:0011223344556677", Sig: "c2lnbmF0dXJl+/=="}.detail(),
		Prev: GenesisHash}
	minimal := &Record{Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), Prev: GenesisHash}
	late := &Record{Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), Seq: 1, Size: -5, Prev: GenesisHash}
	local := relayRecord()
	local.Time = time.Date(2026, 6, 1, 12, 0, 0, 1, time.FixedZone("x", 3600)) // written in UTC
	out := []*Record{relayRecord(), full, escapes, cp, minimal, late, local}
	for i := range 4 {
		r := sampleRecord(i)
		r.Time, r.Seq, r.Prev = time.Date(2026, 1, 2, 3, 4, 5, i*1000, time.UTC), uint64(i+1), GenesisHash
		out = append(out, r)
	}
	return out
}

// TestParseCanonicalTakesWrittenLines: every line the log writes takes the
// fast path, and it decodes the same record as encoding/json.
func TestParseCanonicalTakesWrittenLines(t *testing.T) {
	for i, r := range writtenRecords() {
		line := lineOf(t, r)
		cut, hash, err := splitHash(line)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		fast, ok := parseCanonical(line[:cut], hash)
		if !ok {
			t.Errorf("%d: the fast path refused a line the log wrote: %s", i, line)
			continue
		}
		slow, err := parseLineJSON(line)
		if err != nil {
			t.Fatalf("%d: the encoding/json path refused %s: %v", i, line, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%d: fast path decoded\n%#v\nencoding/json\n%#v", i, fast, slow)
		}
	}
}

// TestParseLineFallsBack: lines that are not canonical, or not intact,
// get exactly encoding/json's answer.
func TestParseLineFallsBack(t *testing.T) {
	good := lineOf(t, relayRecord())
	rep := func(old, new string) []byte { return bytes.Replace(good, []byte(old), []byte(new), 1) }
	cases := [][]byte{
		rep(`"user":"alice"`, `"user":"mallory"`),                           // hash mismatch
		rep(`"seq":123456,`, `"seq":123456, `),                              // whitespace
		rep(`"seq":123456`, `"seq":0123456`),                                // leading zero
		rep(`"seq":123456`, `"seq":-1`),                                     // negative seq
		rep(`"seq":123456`, `"seq":1e3`),                                    // exponent
		rep(`"seq":123456`, `"Seq":123456`),                                 // case-folded key
		rep(`"seq":123456,`, `"seq":123456,"seq":123457,`),                  // duplicate key
		rep(`"user":"alice",`, ``),                                          // missing field
		rep(`"user":"alice"`, `"user":"\u0061lice"`),                        // needless escape
		rep(`"user":"alice"`, `"user":"al\/ice"`),                           // \/ escape
		rep(`"user":"alice"`, `"user":"\ud83d\ude00"`),                      // surrogates
		rep(`"user":"alice"`, `"user":"a`+"\x01"+`"`),                       // raw control byte
		rep(`"user":"alice"`, `"user":"a`+"\xff"+`"`),                       // raw invalid UTF-8
		rep(`"user":"alice"`, `"user":null`),                                // null
		rep(`"size":290,`, `"size":290,"write":false,`),                     // false written
		rep(`"cluster":"prismatic",`, `"cluster":"prismatic","dir":"e2p",`), // order
		rep(`"prev":"9f`, `"hash":"9f`),                                     // hash in the body
		rep(`"prev":"9f2c`, `"prev":"9F2C`),                                 // prev not lowercase
		rep(`"time":"2026-11-25T14:45:03.123456789Z"`, `"time":"2026-11-25T15:45:03.123456789+01:00"`),
		rep(`"time":"2026-11-25T14:45:03.123456789Z"`, `"time":"2026-11-25T14:45:03.1234567890Z"`),
		rep(`"args":"`, `"detail":{},"args":"`),
		rep(`{"time"`, `{"x":1,"time"`),
		rep(`{"time"`, ` {"time"`),
		good[:len(good)-3],
		append(append([]byte{}, good[:len(good)-hashSuffixLen]...), `,"hash":"`+GenesisHash+`"}`...),
	}
	cases = append(cases, good)
	for i, line := range cases {
		want, wantErr := parseLineJSON(line)
		got, gotErr := parseLine(line)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Errorf("%d %s:\nparseLine     %v %#v\nencoding/json %v %#v", i, line, gotErr, got, wantErr, want)
		}
		if i < len(cases)-1 && wantErr == nil {
			t.Errorf("%d: expected encoding/json to refuse %s", i, line)
		}
	}
}

// rehashClaimed makes line's hash field the right one for its body and the prev
// it names (if it names one), so that a mutated line gets past the hash
// check and its decoding is what is compared.
func rehashClaimed(line []byte) []byte {
	if len(line) < hashSuffixLen+1 {
		return line
	}
	head := line[:len(line)-hashSuffixLen]
	prev := ""
	if i := bytes.Index(head, []byte(`"prev":"`)); i >= 0 && i+8+64 <= len(head) {
		prev = string(head[i+8 : i+8+64])
	}
	body := append(head[:len(head):len(head)], '}')
	return append(append(head[:len(head):len(head)], hashFieldPrefix...), chainHash(prev, body)+`"}`...)
}

// FuzzParseLineFast: on any input parseLine answers as the encoding/json
// path does (same record, same error), as is and with the hash made to
// match.
func FuzzParseLineFast(f *testing.F) {
	for _, r := range writtenRecords() {
		f.Add(lineOf(f, r))
	}
	f.Add([]byte(`{"time":"x","prev":"` + GenesisHash + `","hash":"` + GenesisHash + `"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, l := range [][]byte{line, rehashClaimed(line)} {
			want, wantErr := parseLineJSON(l)
			got, gotErr := parseLine(l)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q:\nparseLine     %v %#v\nencoding/json %v %#v", l, gotErr, got, wantErr, want)
			}
		}
	})
}

// FuzzCanonicalRoundTrip: whatever strings a record holds, the line the
// log writes takes the fast path to the record encoding/json decodes.
func FuzzCanonicalRoundTrip(f *testing.F) {
	f.Add("message", "alice", "erlang:process_info/2", "[<0.1.0>]", "k", "v", int64(12), uint64(7))
	f.Add("", "\xff\xfe", "\x00\n\"\\\x7f", "\u2028<>&\U0001F600", "", "", int64(-1), uint64(1<<63))
	f.Add("", "", "", "", "\t", "\r", int64(math.MinInt64), uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, event, user, mfa, args, dk, dv string, n int64, serial uint64) {
		r := Record{
			Time: time.Unix(n%(1<<35), n%1e9), Seq: serial, Event: Event(event), User: user, MFA: mfa, Args: args,
			CertSerial: serial, BytesIn: n, Size: int(n), Write: n%2 == 0,
			Detail: map[string]string{dk: dv, "z" + dk: dv}, Prev: GenesisHash,
		}
		line, _, err := appendLine(nil, &r)
		if err != nil {
			return
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		cut, hash, err := splitHash(line)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := parseCanonical(line[:cut], hash)
		if !ok {
			t.Fatalf("the fast path refused a line the log wrote: %q", line)
		}
		slow, err := parseLineJSON(line)
		if err != nil || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %#v, encoding/json %#v %v", line, fast, slow, err)
		}
	})
}

// BenchmarkParseLine is the per-record cost of verification: parse,
// canonical check and hash of one relay message line, through parseLine
// (the fast path) and through encoding/json alone.
func BenchmarkParseLine(b *testing.B) {
	line := lineOf(b, relayRecord())
	for _, bc := range []struct {
		name  string
		parse func([]byte) (Record, error)
	}{{"fast", parseLine}, {"json", parseLineJSON}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(line) + 1))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.parse(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
