package audit

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeLog writes a valid log of n records, seq 1 to n from the genesis
// hash, and returns its path and bytes. It chains the lines itself instead
// of going through Open, which starts a new log with a log_start record:
// this is a log as written before log ids existed (Open on it appends a
// log_start).
func writeLog(t testing.TB, n int) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	now := fixedNow()
	var data []byte
	prev := GenesisHash
	for i := range n {
		r := sampleRecord(i)
		r.Time, r.Seq, r.Prev = now(), uint64(i+1), prev
		var err error
		if data, prev, err = appendLine(data, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// goodLog returns the bytes of a valid log with n records.
func goodLog(t testing.TB, n int) []byte {
	_, data := writeLog(t, n)
	return data
}

func splitLines(data []byte) [][]byte {
	return bytes.SplitAfter(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func TestVerifyDetectsTampering(t *testing.T) {
	good := goodLog(t, 5)
	lines := splitLines(good) // each ends with '\n' except the last
	lines[4] = append(lines[4], '\n')
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }

	tests := [...]struct {
		name     string
		data     []byte
		wantN    int
		wantLine int
		reason   string
	}{
		0:  {"edit a field", bytes.Replace(good, []byte(`"seq":3,"event":"message","session":"s2","user":"alice"`), []byte(`"seq":3,"event":"message","session":"s2","user":"mallory"`), 1), 2, 3, "hash mismatch"},
		1:  {"edit the hash", join(lines[0], lines[1], bytes.Replace(lines[2], []byte(`"hash":"`), []byte(`"hash":"0`), 1)[:len(lines[2])-2], []byte("}\n"), lines[3], lines[4]), 2, 3, ""},
		2:  {"delete a line", join(lines[0], lines[1], lines[3], lines[4]), 2, 3, "seq is 4"},
		3:  {"delete the first line", join(lines[1], lines[2], lines[3], lines[4]), 0, 1, "seq is 2"},
		4:  {"reorder", join(lines[0], lines[2], lines[1], lines[3], lines[4]), 1, 2, "seq is 3"},
		5:  {"duplicate", join(lines[0], lines[1], lines[1], lines[2]), 2, 3, "seq is 2"},
		6:  {"truncate the last record", good[:len(good)-20], 4, 5, "incomplete"},
		7:  {"truncate the last newline", good[:len(good)-1], 4, 5, "incomplete"},
		8:  {"non-canonical spacing", bytes.Replace(good, []byte(`"seq":2,`), []byte(`"seq": 2,`), 1), 1, 2, "canonical"},
		9:  {"duplicate key", bytes.Replace(good, []byte(`"seq":2,`), []byte(`"seq":2,"user":"x",`), 1), 1, 2, "canonical"},
		10: {"blank line", join(lines[0], []byte("\n"), lines[1]), 1, 2, "too short"},
		11: {"not JSON", join(lines[0], []byte(strings.Repeat("x", 200)+"\n")), 1, 2, "hash"},
		12: {"prev rewritten consistently", rehash(t, lines[1], strings.Repeat("1", 64)), 0, 1, "seq is 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Verify(bytes.NewReader(tt.data))
			var be *BreakError
			if !errors.As(err, &be) {
				t.Fatalf("Verify = %d, %v; want a *BreakError", n, err)
			}
			if n != tt.wantN || be.Line != tt.wantLine || !strings.Contains(be.Reason, tt.reason) {
				t.Fatalf("Verify = %d, %v; want n=%d, line %d, reason containing %q", n, err, tt.wantN, tt.wantLine, tt.reason)
			}
			if be.Seq != uint64(tt.wantLine) {
				t.Errorf("BreakError.Seq = %d, want %d", be.Seq, tt.wantLine)
			}
		})
	}
}

// rehash rewrites line's prev to prev and recomputes its hash, as a forger
// who cannot touch the records before it would.
func rehash(t *testing.T, line []byte, prev string) []byte {
	t.Helper()
	r, err := parseLine(bytes.TrimSuffix(line, []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	r.Prev = prev
	out, _, err := appendLine(nil, &r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyPrevLinkage(t *testing.T) {
	lines := splitLines(goodLog(t, 3))
	// Line 2 rewritten with a wrong prev but a self-consistent hash and the
	// right seq: only the linkage check catches it.
	data := append(append(append([]byte{}, lines[0]...), rehash(t, lines[1], strings.Repeat("a", 64))...), lines[2]...)
	n, err := Verify(bytes.NewReader(data))
	var be *BreakError
	if !errors.As(err, &be) || n != 1 || be.Line != 2 || !strings.Contains(be.Reason, "prev") {
		t.Fatalf("Verify = %d, %v; want break at line 2 on prev", n, err)
	}
}

func TestVerifyEmptyAndLongLine(t *testing.T) {
	if n, err := Verify(bytes.NewReader(nil)); n != 0 || err != nil {
		t.Fatalf("Verify(empty) = %d, %v", n, err)
	}
	long := append(goodLog(t, 1), bytes.Repeat([]byte("y"), MaxLineLen+10)...)
	n, err := Verify(bytes.NewReader(long))
	var be *BreakError
	if !errors.As(err, &be) || n != 1 || be.Line != 2 || !strings.Contains(be.Reason, "longer than") {
		t.Fatalf("Verify(long line) = %d, %v", n, err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestVerifyReadError(t *testing.T) {
	_, err := Verify(errReader{})
	var be *BreakError
	if err == nil || errors.As(err, &be) {
		t.Fatalf("Verify(read error) = %v; want a plain read error", err)
	}
}
