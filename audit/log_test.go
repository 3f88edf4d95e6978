package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fixedNow returns a clock that starts at a fixed instant and advances one
// millisecond per call, so tests never depend on the wall clock.
func fixedNow() func() time.Time {
	var n atomic.Int64
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Millisecond) }
}

func openTest(t *testing.T, path string) *Log {
	t.Helper()
	l, err := Open(path, Options{Now: fixedNow()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func sampleRecord(i int) *Record {
	return &Record{
		Event:      EventMessage,
		Session:    fmt.Sprintf("s%d", i%3),
		User:       "alice",
		KeyID:      "alice@example",
		CertSerial: 42,
		SourceAddr: "10.0.0.1:5555",
		Engineer:   "dbg@laptop",
		Target:     "app@prod1",
		Cluster:    "eu",
		Dir:        DirE2P,
		Op:         "SPAWN_REQUEST",
		MFA:        "erlang:process_info/2",
		Decision:   DecisionAllow,
		Rule:       "read-only",
		Size:       100 + i,
		Args:       "[<0.1.0>, \"quote\\\" and \n newline\"]",
		Detail:     map[string]string{"b": "2", "a": "1"},
	}
}

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		if err := l.Append(context.Background(), sampleRecord(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

func TestAppendVerifyQueryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	startSeq, startHash := l.Head() // the log_start record
	if startSeq != 1 || len(l.ID()) != 32 {
		t.Fatalf("new log: head %d, id %q; want the log_start record at seq 1 and a 32-hex id", startSeq, l.ID())
	}
	r := sampleRecord(0)
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.Seq != 2 || r.Prev != startHash || len(r.Hash) != 64 || r.Time.IsZero() {
		t.Fatalf("Append did not fill in seq/prev/hash/time: %+v", r)
	}
	appendN(t, l, 9)
	if seq, _ := l.Head(); seq != 11 {
		t.Fatalf("Head seq = %d, want 11", seq)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := VerifyFile(path)
	if n != 11 || err != nil {
		t.Fatalf("VerifyFile = %d, %v; want 11, nil", n, err)
	}

	data, _ := os.ReadFile(path)
	lines := bytes.SplitN(data, []byte("\n"), 3)
	start := string(lines[0])
	for _, want := range []string{`{"time":"2026-01-02T03:04:05.001Z","seq":1,"event":"log_start","decision":"info","detail":{"log_id":"` + l.ID() + `"},"prev":"` + GenesisHash + `","hash":"`} {
		if !strings.Contains(start, want) {
			t.Errorf("first line %s\ndoes not contain %s", start, want)
		}
	}
	first := string(lines[1])
	for _, want := range []string{`{"time":"2026-01-02T03:04:05.002Z","seq":2,"event":"message"`, `"cert_serial":42`, `"detail":{"a":"1","b":"2"},"prev":"` + startHash + `","hash":"`} {
		if !strings.Contains(first, want) {
			t.Errorf("second line %s\ndoes not contain %s", first, want)
		}
	}
	var got []Record
	err = Query(bytes.NewReader(data), Filter{Session: "s1"}, func(r Record) error { got = append(got, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Seq != 4 || got[0].Args != sampleRecord(0).Args || got[0].Detail["a"] != "1" {
		t.Fatalf("Query(session s1) = %+v", got)
	}
}

func TestHashIsSHA256OfPrevAndBody(t *testing.T) {
	_, data := writeLog(t, 2)
	prev := GenesisHash
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		i := strings.LastIndex(line, `,"hash":"`)
		body, hash := line[:i]+"}", line[i+len(`,"hash":"`):len(line)-2]
		if got := chainHash(prev, []byte(body)); got != hash {
			t.Fatalf("hash = %s, want sha256(prev||body) = %s", hash, got)
		}
		prev = hash
	}
}

func TestInvalidUTF8RoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	r := &Record{Event: "message", Args: "bad \xff\xfe utf8 \x00 \u2028", Detail: map[string]string{"k\xff": "v\x01"}}
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n, err := VerifyFile(path); n != 2 || err != nil {
		t.Fatalf("VerifyFile = %d, %v", n, err)
	}
}

func TestConcurrentAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	const goroutines, each = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r := sampleRecord(i)
				r.Session = fmt.Sprintf("g%d", g)
				if err := l.Append(context.Background(), r); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := VerifyFile(path)
	if n != goroutines*each+1 || err != nil { // +1: log_start
		t.Fatalf("VerifyFile = %d, %v; want %d, nil", n, err, goroutines*each+1)
	}
	perSession := map[string]int{}
	f, _ := os.Open(path)
	defer f.Close()
	Query(f, Filter{}, func(r Record) error { perSession[r.Session]++; return nil })
	for g := range goroutines {
		if c := perSession[fmt.Sprintf("g%d", g)]; c != each {
			t.Errorf("session g%d has %d records, want %d", g, c, each)
		}
	}
	t.Logf("%d records in %d fsyncs", n, l.batches.Load())
}

func TestReopenContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	appendN(t, l, 3)
	_, head := l.Head()
	l.Close()

	for i, verifyAll := range []bool{false, true} {
		l2, err := Open(path, Options{VerifyOnOpen: verifyAll})
		if err != nil {
			t.Fatal(err)
		}
		if seq, h := l2.Head(); seq != uint64(4+i) || h != head {
			t.Fatalf("reopened head = %d %s, want %d %s", seq, h, 4+i, head)
		}
		if l2.ID() != l.ID() {
			t.Fatalf("reopened log id %q, want %q", l2.ID(), l.ID())
		}
		r := sampleRecord(0)
		if err := l2.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if r.Prev != head {
			t.Fatalf("reopened chain prev = %s, want %s", r.Prev, head)
		}
		head = r.Hash
		l2.Close()
	}
	if n, err := VerifyFile(path); n != 6 || err != nil {
		t.Fatalf("VerifyFile = %d, %v; want 6, nil", n, err)
	}
}

// A complete last line that does not verify is not a torn write: Open
// refuses it, names the line and beamgate audit verify, and changes
// nothing.
func TestOpenRefusesTamperedLastLine(t *testing.T) {
	path, data := writeLog(t, 2)
	tampered := bytes.Replace(data, []byte(`"seq":2,"event":"message"`), []byte(`"seq":2,"event":"massage"`), 1)
	os.WriteFile(path, tampered, 0o600)
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "beamgate audit verify") {
		t.Fatalf("Open(tampered) err = %v; want an error naming line 2 and beamgate audit verify", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, tampered) {
		t.Fatal("Open modified a file it refused")
	}
}

func TestOpenVerifyOnOpenFindsEarlyBreak(t *testing.T) {
	path, data := writeLog(t, 3)
	os.WriteFile(path, bytes.Replace(data, []byte(`"user":"alice"`), []byte(`"user":"bobby"`), 1), 0o600)
	l2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open without VerifyOnOpen checks only the last line: %v", err)
	}
	l2.Close()
	if _, err := Open(path, Options{VerifyOnOpen: true}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Open(VerifyOnOpen) err = %v; want line 1", err)
	}
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openTest(t, path)
	appendN(t, l, 1)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("new audit file mode = %#o, want 0600", perm)
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o666} {
		p := filepath.Join(dir, fmt.Sprintf("open-%o.log", mode))
		os.WriteFile(p, nil, 0o600)
		os.Chmod(p, mode)
		if _, err := Open(p, Options{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Open(mode %#o) err = %v; want refusal naming chmod 600", mode, err)
		}
	}
}

func TestOpenRefusesSecondWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	openTest(t, path)
	if l2, err := Open(path, Options{}); err == nil {
		l2.Close()
		t.Fatal("second Open of the same log succeeded; want lock error")
	}
}

// faultyFile wraps the log file and fails writes or syncs on demand.
type faultyFile struct {
	logFile
	failWrite, failSync atomic.Bool
	partial             atomic.Bool // on failWrite, write half the bytes first
}

var errInjected = errors.New("injected disk failure")

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.failWrite.Load() {
		if f.partial.Load() {
			n, _ := f.logFile.Write(p[:len(p)/2])
			return n, errInjected
		}
		return 0, errInjected
	}
	return f.logFile.Write(p)
}

func (f *faultyFile) Sync() error {
	if f.failSync.Load() {
		return errInjected
	}
	return f.logFile.Sync()
}

// openFaulty opens a new log whose file fails on demand. It probes only
// once an hour: the outage lasts for the whole test (outage_test.go tests
// recovery).
func openFaulty(t *testing.T) (*Log, *faultyFile) {
	t.Helper()
	ff := new(faultyFile)
	l, err := openLog(filepath.Join(t.TempDir(), "audit.log"), Options{ProbeInterval: time.Hour}, func(f logFile) logFile { ff.logFile = f; return ff })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, ff
}

func TestFailClosed(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*faultyFile)
	}{
		{"write error", func(f *faultyFile) { f.failWrite.Store(true) }},
		{"partial write", func(f *faultyFile) { f.failWrite.Store(true); f.partial.Store(true) }},
		{"fsync error", func(f *faultyFile) { f.failSync.Store(true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ff := openFaulty(t)
			appendN(t, l, 2)
			select {
			case <-l.Failed():
				t.Fatal("Failed closed before any failure")
			default:
			}

			failed := l.Failed()
			tt.inject(ff)
			err := l.Append(context.Background(), sampleRecord(0))
			if !errors.Is(err, ErrLogFailed) || !errors.Is(err, ErrUnavailable) || !errors.Is(err, errInjected) {
				t.Fatalf("Append after injected failure = %v; want ErrLogFailed and ErrUnavailable wrapping the cause", err)
			}
			select {
			case <-failed:
			case <-time.After(10 * time.Second):
				t.Fatal("Failed() not closed after a write failure")
			}
			// Refused until a probe succeeds (none in this test).
			for range 3 {
				if err := l.Append(context.Background(), sampleRecord(0)); !errors.Is(err, ErrLogFailed) {
					t.Fatalf("later Append = %v; want ErrLogFailed", err)
				}
			}
			if err := l.Err(); !errors.Is(err, ErrLogFailed) || !errors.Is(err, errInjected) {
				t.Fatalf("Err() = %v", err)
			}
			if s := l.Stats(); s.OutageSince.IsZero() || s.Refused != 4 || s.Outages != 1 {
				t.Fatalf("Stats = %+v; want an outage with 4 refused", s)
			}
			if err := l.Close(); !errors.Is(err, ErrLogFailed) {
				t.Fatalf("Close() = %v; want the failure", err)
			}
			// The failed record was cut back: only complete records remain.
			if n, err := VerifyFile(l.Path()); n != 3 || err != nil {
				t.Fatalf("VerifyFile = %d, %v; want the 3 acknowledged records", n, err)
			}
		})
	}
}

func TestFailClosedReleasesConcurrentWaiters(t *testing.T) {
	l, ff := openFaulty(t)
	ff.failSync.Store(true)
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 20 {
		wg.Go(func() {
			if err := l.Append(context.Background(), sampleRecord(1)); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrLogFailed) {
				t.Errorf("Append = %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 0 {
		t.Fatalf("%d Appends succeeded although every fsync failed", ok.Load())
	}
}

func TestAppendAfterClose(t *testing.T) {
	l := openTest(t, filepath.Join(t.TempDir(), "audit.log"))
	appendN(t, l, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), sampleRecord(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestAppendTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	r := &Record{Event: "message", Args: strings.Repeat("x", MaxLineLen)}
	if err := l.Append(context.Background(), r); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("Append(huge) = %v, want ErrRecordTooLarge", err)
	}
	appendN(t, l, 1) // still usable, seq not consumed
	l.Close()
	if n, err := VerifyFile(path); n != 2 || err != nil {
		t.Fatalf("VerifyFile = %d, %v", n, err)
	}
}

func TestAppendCanceledContext(t *testing.T) {
	l := openTest(t, filepath.Join(t.TempDir(), "audit.log"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Append(ctx, sampleRecord(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(canceled) = %v", err)
	}
}

// BenchmarkAppendParallel measures group-commit throughput on this disk:
// every Append waits for its own fsync, shared with whatever else is
// pending.
func BenchmarkAppendParallel(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetParallelism(32) // 32×GOMAXPROCS concurrent sessions
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := sampleRecord(0)
		for pb.Next() {
			if err := l.Append(context.Background(), r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N)/float64(l.batches.Load()), "records/fsync")
}

// BenchmarkAppendSerial is one appender: one fsync per record, the
// baseline group commit improves on.
func BenchmarkAppendSerial(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := sampleRecord(0)
	for b.Loop() {
		if err := l.Append(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
