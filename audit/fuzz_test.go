package audit

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary bytes to Verify: it must not panic, and when it
// accepts n records, Query must read exactly n records back.
func FuzzVerify(f *testing.F) {
	good := goodLog(f, 3)
	f.Add([]byte{})
	f.Add(good)
	f.Add(good[:len(good)-7])
	f.Add(bytes.Replace(good, []byte(`"seq":2`), []byte(`"seq":7`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Verify(bytes.NewReader(data))
		var be *BreakError
		if err != nil && !errors.As(err, &be) {
			t.Fatalf("Verify returned a non-break error on an in-memory reader: %v", err)
		}
		if err != nil {
			return
		}
		got := 0
		if qerr := Query(bytes.NewReader(data), Filter{}, func(Record) error { got++; return nil }); qerr != nil || got != n {
			t.Fatalf("Verify accepted %d records, Query read %d, %v", n, got, qerr)
		}
	})
}

// FuzzLineRoundTrip checks that whatever strings a caller puts in a
// record, the line the log writes parses back (canonical form, hash) to the
// same record.
func FuzzLineRoundTrip(f *testing.F) {
	f.Add("message", "alice", "erlang:process_info/2", "[<0.1.0>]", "k", "v", int64(12), uint64(7))
	f.Add("", "\xff\xfe", "\x00\n\"\\", "\u2028<>&", "", "", int64(-1), uint64(1<<63))
	f.Add("", "", "", "", "", "", int64(-62135596801), uint64(0)) // year 0
	f.Add("", "", "", "", "", "", int64(253402300800), uint64(0)) // year 10000
	f.Fuzz(func(t *testing.T, event, user, mfa, args, dk, dv string, n int64, serial uint64) {
		r := Record{
			Time: time.Unix(n, n%1e9), Seq: serial, Event: Event(event), User: user, MFA: mfa, Args: args,
			CertSerial: serial, BytesIn: n, Size: int(n), Write: n%2 == 0,
			Detail: map[string]string{dk: dv}, Prev: GenesisHash,
		}
		line, hash, err := appendLine(nil, &r)
		if errors.Is(err, ErrRecordTooLarge) || errors.Is(err, ErrTimeOutOfRange) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseLine(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			t.Fatalf("parseLine(%q) = %v", line, err)
		}
		if got.Hash != hash {
			t.Fatalf("hash %s, want %s", got.Hash, hash)
		}
		// What parses back is the sanitised record: re-encoding it gives the
		// same line.
		again, _, err := appendLine(nil, &got)
		if err != nil || !bytes.Equal(again, line) {
			t.Fatalf("re-encoded line differs:\n%s\n%s", line, again)
		}
		if !got.Time.Equal(r.Time) {
			t.Fatalf("time %v parsed back as %v", r.Time, got.Time)
		}
	})
}
