package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recoverNow is the clock of the recovery tests: quarantine files are
// named audit.jsonl.torn-20260102T030405Z-<n>.
func recoverNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC) }

const quarantine1 = "audit.jsonl.torn-20260102T030405Z-1"

// logWithTornTail writes a log (log_start and n records), closes it, and
// appends the first cut bytes of what the next record would have been. It
// returns the path, the good bytes and the torn bytes.
func logWithTornTail(t *testing.T, n, cut int) (string, []byte, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openTest(t, path)
	appendN(t, l, n)
	seq, head := l.Head()
	l.Close()
	good, _ := os.ReadFile(path)
	r := sampleRecord(99)
	r.Time, r.Seq, r.Prev = recoverNow(), seq+1, head
	line, _, err := appendLine(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	torn := line[:cut]
	appendBytes(t, path, torn)
	return path, good, torn
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// checkRecovered checks that r records the quarantine of torn in the file
// named q beside path, which holds exactly those bytes, mode 0600.
func checkRecovered(t *testing.T, path string, r Record, q string, torn []byte) {
	t.Helper()
	sum := sha256.Sum256(torn)
	if r.Event != EventRecovered || r.Detail["torn_bytes"] != strconv.Itoa(len(torn)) ||
		r.Detail["torn_sha256"] != hex.EncodeToString(sum[:]) || r.Detail["quarantine"] != q || r.Decision != DecisionInfo {
		t.Fatalf("recovered record %+v; want %d bytes, their sha256, quarantine %s", r, len(torn), q)
	}
	qpath := filepath.Join(filepath.Dir(path), q)
	got, err := os.ReadFile(qpath)
	if err != nil || !bytes.Equal(got, torn) {
		t.Fatalf("quarantine file %s: %q, %v; want the torn bytes %q", q, got, err, torn)
	}
	if fi, _ := os.Stat(qpath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("quarantine mode %v", fi.Mode())
	}
	if p, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"+pendingSuffix)); len(p) != 0 {
		t.Fatalf("pending quarantine files left: %v", p)
	}
}

func TestOpenRecoversTornTail(t *testing.T) {
	path, good, torn := logWithTornTail(t, 3, 300)
	l, err := Open(path, Options{Now: recoverNow})
	if err != nil {
		t.Fatalf("Open of a torn log: %v", err)
	}
	if seq, _ := l.Head(); seq != 5 {
		t.Fatalf("head %d; want the recovered record at seq 5", seq)
	}
	appendN(t, l, 1)
	l.Close()
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, good) {
		t.Fatal("the complete records before the torn line changed")
	}
	recs := checkSet(t, path)
	if len(recs) != 6 {
		t.Fatalf("%d records", len(recs))
	}
	checkRecovered(t, path, recs[4], quarantine1, torn)
	if n, err := VerifyFile(path); n != 6 || err != nil {
		t.Fatalf("VerifyFile = %d, %v", n, err)
	}
}

// A torn write can be a whole batch cut short: complete (never
// acknowledged) lines may precede the torn one. Those stay; only the bytes
// after the last newline are moved aside.
func TestOpenRecoversTornAfterUnacknowledgedLines(t *testing.T) {
	path, _, torn := logWithTornTail(t, 2, 10)
	data, _ := os.ReadFile(path)
	good := data[:len(data)-len(torn)]
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	recs := checkSet(t, path)
	last := recs[len(recs)-1]
	r := sampleRecord(7)
	r.Time, r.Seq, r.Prev = recoverNow(), last.Seq+1, last.Hash
	line, _, _ := appendLine(nil, r)
	appendBytes(t, path, append(line, torn...))
	l, err := Open(path, Options{Now: recoverNow})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs = checkSet(t, path)
	if recs[len(recs)-2].Seq != r.Seq {
		t.Fatal("the complete line before the torn one was lost")
	}
	checkRecovered(t, path, recs[len(recs)-1], quarantine1, torn)
}

// Only a torn line in the file (a crash during the first record of a new
// log, or of a file started by Open after a hand rotation).
func TestOpenRecoversTornOnlyLine(t *testing.T) {
	t.Run("new log", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		torn := []byte(`{"time":"2026-01-02T03:04:05Z","seq":1,"event":"log_st`)
		os.WriteFile(path, torn, 0o600)
		l, err := Open(path, Options{Now: recoverNow})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		recs := checkSet(t, path)
		if len(recs) != 2 || recs[0].Event != EventLogStart || recs[0].Detail["log_id"] != l.ID() {
			t.Fatalf("records %+v", recs)
		}
		checkRecovered(t, path, recs[1], quarantine1, torn)
	})
	t.Run("after rotated files", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		l := openTest(t, path)
		appendN(t, l, 2)
		if err := l.Rotate(); err != nil {
			t.Fatal(err)
		}
		l.Close()
		files, _ := Segments(path)
		os.Rename(path, path+".20990101T000000.000000000Z") // the rotated file is the newest
		torn := []byte(`{"time":"2026-01-02T03:04:05Z","seq":5,"ev`)
		os.WriteFile(path, torn, 0o600)
		l, err := Open(path, Options{Now: recoverNow})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		recs := checkSet(t, path)
		if got, _ := Segments(path); len(got) != len(files)+1 {
			t.Fatalf("Segments = %v", got)
		}
		checkRecovered(t, path, recs[len(recs)-1], quarantine1, torn)
		if recs[len(recs)-2].Event != EventRotate {
			t.Fatalf("the new active file starts with %s", recs[len(recs)-2].Event)
		}
	})
}

// A file written before log ids existed: the recovered record, then a
// log_start.
func TestOpenRecoversTornLegacyFile(t *testing.T) {
	path, data := writeLog(t, 3)
	torn := []byte(`{"time":"2026-01-02T03:04:05Z","se`)
	appendBytes(t, path, torn)
	l, err := Open(path, Options{Now: recoverNow})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	got, _ := os.ReadFile(path)
	if !bytes.HasPrefix(got, data) {
		t.Fatal("legacy records changed")
	}
	recs := checkSet(t, path)
	if len(recs) != 5 || recs[4].Event != EventLogStart || recs[4].Detail["log_id"] != l.ID() {
		t.Fatalf("records: %d, last %+v", len(recs), recs[len(recs)-1])
	}
	checkRecovered(t, path, recs[3], "audit.log.torn-20260102T030405Z-1", torn)
}

// What is not a torn write stays a refusal, and Open changes nothing.
func TestOpenRefusesNonTornDamage(t *testing.T) {
	t.Run("bad last complete line", func(t *testing.T) {
		path, data := writeLog(t, 3)
		bad := bytes.Replace(data, []byte(`"seq":3,"event":"message"`), []byte(`"seq":3,"event":"massage"`), 1)
		bad = append(bad, `{"time":"2026`...)
		os.WriteFile(path, bad, 0o600)
		_, err := Open(path, Options{Now: recoverNow})
		if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "beamgate audit verify") {
			t.Fatalf("Open = %v; want a refusal naming line 3 and beamgate audit verify", err)
		}
		checkUntouched(t, path, bad)
	})
	t.Run("unterminated tail longer than a record", func(t *testing.T) {
		path, data := writeLog(t, 1)
		bad := append(data, bytes.Repeat([]byte("z"), MaxLineLen)...)
		os.WriteFile(path, bad, 0o600)
		_, err := Open(path, Options{Now: recoverNow})
		if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "too long to be a torn record") {
			t.Fatalf("Open = %v", err)
		}
		checkUntouched(t, path, bad)
	})
}

func checkUntouched(t *testing.T, path string, want []byte) {
	t.Helper()
	if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
		t.Fatal("Open changed a file it refused")
	}
	if q, _ := filepath.Glob(path + ".torn-*"); len(q) != 0 {
		t.Fatalf("Open quarantined bytes of a file it refused: %v", q)
	}
}

// A crash (or a failed write) in the middle of a recovery: the next Open
// finishes or redoes it, and every torn byte ends up in exactly one
// recorded quarantine file.
func TestOpenFinishesInterruptedRecovery(t *testing.T) {
	t.Run("crash before truncating", func(t *testing.T) {
		for _, copied := range []int{0, 40, 200} { // how much of the copy was written
			path, _, torn := logWithTornTail(t, 2, 200)
			os.WriteFile(filepath.Join(filepath.Dir(path), quarantine1+pendingSuffix), torn[:copied], 0o600)
			l, err := Open(path, Options{Now: recoverNow})
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			recs := checkSet(t, path)
			if len(recordsOf(recs, EventRecovered)) != 1 {
				t.Fatalf("copied %d: %d recovered records", copied, len(recordsOf(recs, EventRecovered)))
			}
			q := recs[len(recs)-1].Detail["quarantine"]
			checkRecovered(t, path, recs[len(recs)-1], q, torn)
		}
	})
	t.Run("write of the recovered record fails", func(t *testing.T) {
		path, good, torn := logWithTornTail(t, 2, 200)
		d := new(diskFaults)
		d.failWrite.Store(true)
		d.partial.Store(true)
		_, err := openLog(path, Options{Now: recoverNow}, func(f logFile) logFile { return &faultFile{logFile: f, d: d} })
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errInjected) {
			t.Fatalf("Open on a failing disk = %v; want ErrUnavailable", err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, good) {
			t.Fatal("after the failed Open the log is not cut back to its complete records")
		}
		if got, _ := os.ReadFile(filepath.Join(filepath.Dir(path), quarantine1+pendingSuffix)); !bytes.Equal(got, torn) {
			t.Fatal("the torn bytes are not kept in the pending quarantine file")
		}
		l, err := Open(path, Options{Now: recoverNow})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		recs := checkSet(t, path)
		checkRecovered(t, path, recs[len(recs)-1], quarantine1, torn)
	})
	t.Run("crash before renaming", func(t *testing.T) {
		path, _, torn := logWithTornTail(t, 2, 200)
		l, err := Open(path, Options{Now: recoverNow})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		q := filepath.Join(filepath.Dir(path), quarantine1)
		os.Rename(q, q+pendingSuffix)
		l, err = Open(path, Options{Now: recoverNow})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		recs := checkSet(t, path)
		if n := len(recordsOf(recs, EventRecovered)); n != 1 {
			t.Fatalf("%d recovered records; want the first one only", n)
		}
		checkRecovered(t, path, recs[len(recs)-1], quarantine1, torn)
	})
	t.Run("crash while writing the recovered record", func(t *testing.T) {
		path, good, torn := logWithTornTail(t, 2, 200)
		dir := filepath.Dir(path)
		// State: truncated, quarantine pending, recovered record torn.
		os.WriteFile(filepath.Join(dir, quarantine1+pendingSuffix), torn, 0o600)
		tornRecord := []byte(`{"time":"2026-01-02T03:04:05.0000006Z","seq":4,"event":"recovered","deci`)
		os.WriteFile(path, append(append([]byte{}, good...), tornRecord...), 0o600)
		l, err := Open(path, Options{Now: recoverNow})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		recs := checkSet(t, path)
		rec := recordsOf(recs, EventRecovered)
		if len(rec) != 2 {
			t.Fatalf("%d recovered records, want 2", len(rec))
		}
		for _, r := range rec {
			want := torn
			if r.Detail["quarantine"] != quarantine1 {
				want = tornRecord
			}
			checkRecovered(t, path, r, r.Detail["quarantine"], want)
		}
	})
}

func TestQuarantineNamesAreUnique(t *testing.T) {
	path, _, torn := logWithTornTail(t, 1, 50)
	for i := 1; i <= 3; i++ {
		l, err := Open(path, Options{Now: recoverNow})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		appendBytes(t, path, torn)
	}
	q, _ := filepath.Glob(path + ".torn-*")
	if len(q) != 3 || !strings.HasSuffix(q[2], "Z-3") {
		t.Fatalf("quarantine files %v", q)
	}
}

func TestLegacyFileGetsLogStart(t *testing.T) {
	path, data := writeLog(t, 3)
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := l.ID()
	if seq, _ := l.Head(); seq != 4 || len(id) != 32 {
		t.Fatalf("head %d, id %q; want a log_start record at seq 4", seq, id)
	}
	l.Close()
	for range 2 { // later opens find the id; no second log_start
		l, err = Open(path, Options{VerifyOnOpen: true})
		if err != nil {
			t.Fatal(err)
		}
		if l.ID() != id {
			t.Fatalf("reopened id %q, want %q", l.ID(), id)
		}
		appendN(t, l, 1)
		l.Close()
	}
	got, _ := os.ReadFile(path)
	if !bytes.HasPrefix(got, data) {
		t.Fatal("legacy records changed")
	}
	recs := checkSet(t, path)
	if len(recs) != 6 || len(recordsOf(recs, EventLogStart)) != 1 || recs[3].Event != EventLogStart {
		t.Fatalf("%d records, %d log_start", len(recs), len(recordsOf(recs, EventLogStart)))
	}
}

func TestVerifyOnOpenAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l := openTest(t, path)
	appendN(t, l, 2)
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	l.Close()
	l, err := Open(path, Options{VerifyOnOpen: true})
	if err != nil {
		t.Fatalf("VerifyOnOpen on a rotated-to file: %v", err)
	}
	l.Close()
	// The rotated file replaced by another (valid) log: the active file's
	// rotate record no longer continues it.
	files, _ := Segments(path)
	_, other := writeLog(t, 5)
	os.WriteFile(files[0], other, 0o600)
	if _, err := Open(path, Options{VerifyOnOpen: true}); err == nil || !strings.Contains(err.Error(), "rotate record continues") {
		t.Fatalf("Open(VerifyOnOpen) = %v; want the broken link reported", err)
	}
	// The rotated file deleted (retention): the active file alone verifies.
	os.Remove(files[0])
	if l, err := Open(path, Options{VerifyOnOpen: true}); err != nil {
		t.Fatal(err)
	} else {
		l.Close()
	}
	if _, err := os.Stat(files[0]); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("Open recreated the deleted file")
	}
}
