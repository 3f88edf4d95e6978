package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// diskFaults injects failures into every file a Log writes through (the
// active file and, after a rotation, its successor).
type diskFaults struct {
	failWrite, failSync, failTruncate atomic.Bool
	partial                           atomic.Bool  // on failWrite, write half the bytes first
	onWrite                           func([]byte) // if set (before Open), sees every write
}

type faultFile struct {
	logFile
	d *diskFaults
}

func (f *faultFile) Write(p []byte) (int, error) {
	if f.d.onWrite != nil {
		f.d.onWrite(p)
	}
	if f.d.failWrite.Load() {
		if f.d.partial.Load() {
			n, _ := f.logFile.Write(p[:len(p)/2])
			return n, errInjected
		}
		return 0, errInjected
	}
	return f.logFile.Write(p)
}

func (f *faultFile) Sync() error {
	if f.d.failSync.Load() {
		return errInjected
	}
	return f.logFile.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if f.d.failTruncate.Load() {
		return errInjected
	}
	return f.logFile.Truncate(size)
}

// openFaultLog opens the log at path with every file wrapped by d.
func openFaultLog(t *testing.T, path string, opts Options, d *diskFaults) *Log {
	t.Helper()
	l, err := openLog(path, opts, func(f logFile) logFile { return &faultFile{logFile: f, d: d} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// outageRecords returns the audit_outage records of recs.
func outageRecords(recs []Record) []Record {
	var out []Record
	for _, r := range recs {
		if r.Event == EventOutage {
			out = append(out, r)
		}
	}
	return out
}

// A failed write or fsync leaves the file exactly as it was before the
// failed record: no partial bytes, no unacknowledged record.
func TestOutageCutsBackFailedWrite(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*diskFaults)
	}{
		{"write error", func(d *diskFaults) { d.failWrite.Store(true) }},
		{"partial write", func(d *diskFaults) { d.failWrite.Store(true); d.partial.Store(true) }},
		{"fsync error after a full write", func(d *diskFaults) { d.failSync.Store(true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			d := new(diskFaults)
			l := openFaultLog(t, path, Options{ProbeInterval: time.Hour}, d)
			appendN(t, l, 3)
			before, _ := os.ReadFile(path)
			tt.inject(d)
			big := sampleRecord(9)
			big.Args = strings.Repeat("x", 10000) // so half a write is a lot of bytes
			if err := l.Append(context.Background(), big); !errors.Is(err, ErrLogFailed) {
				t.Fatalf("Append = %v; want ErrLogFailed", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Fatalf("file changed by a failed write: %d bytes before, %d after", len(before), len(after))
			}
			if n, err := VerifyFile(path); n != 4 || err != nil {
				t.Fatalf("VerifyFile = %d, %v", n, err)
			}
		})
	}
}

// During an outage every Append is refused with a reason an engineer can
// be shown, Err returns it, and Stats counts the refusals.
func TestOutageRefusesWithReason(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	d := new(diskFaults)
	l := openFaultLog(t, path, Options{ProbeInterval: time.Hour}, d)
	appendN(t, l, 1)
	if s := l.Stats(); !s.OutageSince.IsZero() || s.Refused != 0 || l.Err() != nil {
		t.Fatalf("healthy log: Stats %+v, Err %v", s, l.Err())
	}
	d.failWrite.Store(true)
	for i := range 4 {
		err := l.Append(context.Background(), sampleRecord(i))
		if !errors.Is(err, ErrLogFailed) || !errors.Is(err, ErrUnavailable) || !errors.Is(err, errInjected) {
			t.Fatalf("Append %d = %v; want ErrLogFailed, ErrUnavailable and the cause", i, err)
		}
		if !strings.Contains(err.Error(), "the audit log cannot be written (disk full?)") {
			t.Fatalf("Append error %q does not give the engineer the reason", err)
		}
	}
	if err := l.Err(); !errors.Is(err, ErrUnavailable) || !errors.Is(err, errInjected) {
		t.Fatalf("Err() = %v", err)
	}
	s := l.Stats()
	if s.OutageSince.IsZero() || !errors.Is(s.OutageErr, errInjected) || s.Refused != 4 || s.RefusedTotal != 4 || s.Outages != 1 || s.Failures != 1 {
		t.Fatalf("Stats = %+v; want one outage, 4 refused, 1 failure", s)
	}
	if err := l.Rotate(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Rotate during an outage = %v; want the outage error", err)
	}
	start := time.Now()
	if err := l.Close(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Close during an outage = %v; want the outage error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Close waited for the probe")
	}
}

// Once the fault clears, the log resumes by itself: the probe writes an
// audit_outage record with the refused count, Failed is a fresh channel,
// and the chain has no gap.
func TestOutageResumesByItself(t *testing.T) {
	for _, fault := range []string{"write", "fsync"} {
		t.Run(fault, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			d := new(diskFaults)
			l := openFaultLog(t, path, Options{ProbeInterval: 5 * time.Millisecond}, d)
			appendN(t, l, 2) // seq 2, 3
			failed := l.Failed()
			if fault == "write" {
				d.failWrite.Store(true)
				d.partial.Store(true)
			} else {
				d.failSync.Store(true)
			}
			const refused = 7
			for i := range refused {
				if err := l.Append(context.Background(), sampleRecord(i)); !errors.Is(err, ErrLogFailed) {
					t.Fatalf("Append during the fault = %v", err)
				}
			}
			select {
			case <-failed:
			default:
				t.Fatal("Failed() not closed during the outage")
			}
			waitFor(t, "failed probes", func() bool { return l.Stats().Failures >= 3 })
			if n, err := VerifyFile(path); n != 3 || err != nil {
				t.Fatalf("during the outage: VerifyFile = %d, %v; failed probes must leave nothing", n, err)
			}
			d.failWrite.Store(false)
			d.failSync.Store(false)
			waitFor(t, "the log to resume", func() bool { return l.Err() == nil })
			select {
			case <-l.Failed():
				t.Fatal("Failed() after recovery is already closed")
			default:
			}
			s := l.Stats()
			if !s.OutageSince.IsZero() || s.Refused != refused || s.Outages != 1 {
				t.Fatalf("Stats after recovery = %+v", s)
			}
			r := sampleRecord(0)
			if err := l.Append(context.Background(), r); err != nil {
				t.Fatalf("Append after recovery: %v", err)
			}
			if r.Seq != 5 { // log_start 1, records 2-3, audit_outage 4
				t.Fatalf("first record after the outage has seq %d, want 5 (no gap)", r.Seq)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			recs := checkSet(t, path)
			outs := outageRecords(recs)
			if len(outs) != 1 || outs[0].Seq != 4 {
				t.Fatalf("outage records %+v; want one at seq 4", outs)
			}
			o := outs[0].Detail
			since, err1 := time.Parse(time.RFC3339Nano, o["since"])
			until, err2 := time.Parse(time.RFC3339Nano, o["until"])
			dur, err3 := time.ParseDuration(o["duration"])
			if err1 != nil || err2 != nil || err3 != nil || !since.Before(until) || dur <= 0 || dur > until.Sub(since)+time.Millisecond {
				t.Fatalf("outage detail %v: since/until/duration wrong", o)
			}
			if o["refused"] != strconv.Itoa(refused) || !strings.Contains(o["error"], errInjected.Error()) {
				t.Fatalf("outage detail %v; want refused %d and the error", o, refused)
			}
			if outs[0].Decision != DecisionInfo {
				t.Errorf("outage record decision %q", outs[0].Decision)
			}
		})
	}
}

// Appends queued behind the failing write and those arriving while probes
// fail are all refused, and counted exactly once.
func TestOutageFailsQueuedAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	d := new(diskFaults)
	l := openFaultLog(t, path, Options{ProbeInterval: time.Millisecond}, d)
	d.failSync.Store(true)
	const n = 200
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range n {
		wg.Go(func() {
			err := l.Append(context.Background(), sampleRecord(i))
			if err == nil {
				t.Error("Append succeeded although every fsync fails")
			} else if errors.Is(err, ErrLogFailed) {
				refused.Add(1)
			} else {
				t.Errorf("Append = %v", err)
			}
		})
	}
	wg.Wait()
	d.failSync.Store(false)
	waitFor(t, "the log to resume", func() bool { return l.Err() == nil })
	appendN(t, l, 1)
	l.Close()
	outs := outageRecords(checkSet(t, path))
	if refused.Load() != n || len(outs) != 1 || outs[0].Detail["refused"] != strconv.Itoa(n) {
		t.Fatalf("%d refused; outage records %+v; want one saying %d", refused.Load(), outs, n)
	}
}

// Sessions cut themselves when an outage starts; sessions started after
// the recovery are cut by the next outage, not by the old one.
func TestOutageCutsSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	d := new(diskFaults)
	l := openFaultLog(t, path, Options{ProbeInterval: 5 * time.Millisecond}, d)
	w := Writer{Sink: l}
	// session is a relay watchdog: it calls Failed on every turn.
	session := func(ended chan<- error, stop <-chan struct{}) {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.Failed():
				ended <- w.Err()
				return
			case <-stop:
				ended <- nil
				return
			case <-tick.C:
			}
		}
	}
	for round := range 2 {
		ended := make(chan error, 5)
		stop := make(chan struct{})
		for range 5 {
			go session(ended, stop)
		}
		appendN(t, l, 2)
		time.Sleep(20 * time.Millisecond)
		select {
		case err := <-ended:
			t.Fatalf("round %d: a session ended while the log works (%v)", round, err)
		default:
		}
		d.failWrite.Store(true)
		if err := l.Append(context.Background(), sampleRecord(0)); !errors.Is(err, ErrLogFailed) {
			t.Fatalf("round %d: Append = %v", round, err)
		}
		for range 5 {
			select {
			case err := <-ended:
				if err != nil && !errors.Is(err, ErrUnavailable) {
					t.Fatalf("round %d: session ended with %v", round, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: a session was not cut by the outage", round)
			}
		}
		close(stop)
		d.failWrite.Store(false)
		waitFor(t, "the log to resume", func() bool { return l.Err() == nil })
	}
	l.Close()
	if outs := outageRecords(checkSet(t, path)); len(outs) != 2 {
		t.Fatalf("%d outage records, want 2", len(outs))
	}
}

// If even the truncation fails, the partial bytes stay until a probe
// manages to cut them back; only then is the outage recorded.
func TestOutageTruncateFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	d := new(diskFaults)
	l := openFaultLog(t, path, Options{ProbeInterval: 2 * time.Millisecond}, d)
	appendN(t, l, 2)
	d.failWrite.Store(true)
	d.partial.Store(true)
	d.failTruncate.Store(true)
	if err := l.Append(context.Background(), sampleRecord(0)); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Append = %v", err)
	}
	d.failWrite.Store(false) // writes work, truncation still fails
	waitFor(t, "failed probes", func() bool { return l.Stats().Failures >= 4 })
	if l.Err() == nil {
		t.Fatal("resumed although the partial record could not be cut back")
	}
	if _, err := VerifyFile(path); err == nil {
		t.Fatal("expected the partial bytes to be still there while truncation fails")
	}
	d.failTruncate.Store(false)
	waitFor(t, "the log to resume", func() bool { return l.Err() == nil })
	appendN(t, l, 1)
	l.Close()
	recs := checkSet(t, path)
	if len(recs) != 5 || recs[3].Event != EventOutage {
		t.Fatalf("records after recovery: %d, record 4 is %s", len(recs), recs[3].Event)
	}
}

// A probe's backoff doubles up to ten times the interval.
func TestOutageProbeBackoff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	d := new(diskFaults)
	l := openFaultLog(t, path, Options{ProbeInterval: time.Millisecond}, d)
	d.failWrite.Store(true)
	l.Append(context.Background(), sampleRecord(0))
	time.Sleep(100 * time.Millisecond)
	// 1+2+4+8+10+10+... ms: about 12 probes in 100 ms, not 100.
	if f := l.Stats().Failures; f < 4 || f > 30 {
		t.Fatalf("%d failures in 100 ms with a 1 ms interval backing off to 10 ms", f)
	}
}
