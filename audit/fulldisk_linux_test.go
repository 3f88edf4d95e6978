//go:build linux

package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFullDiskTmpfs fills a real 1 MiB tmpfs under load: appends fail with
// the outage error (ENOSPC) and the file keeps only complete records; once
// the junk is deleted the log resumes by itself, and the whole file parses
// and chains, with the outages recorded. Needs root (mount); skipped
// otherwise.
func TestFullDiskTmpfs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): run as root", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path, Options{ProbeInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 20)

	// Load: appenders that count acknowledged and refused appends.
	var acked, refused atomic.Int64
	var firstErr atomic.Pointer[error]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := l.Append(context.Background(), sampleRecord(g*1000+i))
				switch {
				case err == nil:
					acked.Add(1)
				case errors.Is(err, ErrLogFailed):
					refused.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					time.Sleep(time.Millisecond) // a refused session goes away
				default:
					t.Errorf("Append = %v", err)
					return
				}
			}
		})
	}

	// Fill the filesystem.
	junk, err := os.Create(filepath.Join(dir, "junk"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := junk.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	junk.Close()
	waitFor(t, "appends to be refused", func() bool { return refused.Load() >= 50 })
	errp := firstErr.Load()
	if !errors.Is(*errp, ErrUnavailable) || !errors.Is(*errp, syscall.ENOSPC) {
		t.Fatalf("refusal %v; want ErrUnavailable wrapping ENOSPC", *errp)
	}
	t.Logf("disk full: %v", *errp)
	if s := l.Stats(); s.OutageSince.IsZero() && s.Outages == 0 {
		t.Fatalf("Stats %+v: no outage", s)
	}
	// Only complete records in the file, even on a full disk. A probe's
	// write may be seen in progress (cut short by ENOSPC, about to be cut
	// back): what must not happen is partial bytes that stay.
	var n int
	var verr error
	for try := 0; try < 200; try++ {
		if n, verr = VerifyFile(path); verr == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if verr != nil {
		t.Fatalf("VerifyFile on a full disk = %d, %v (for 200 ms)", n, verr)
	}

	// Free the space: the log recovers by itself, under the same load.
	if err := os.Remove(filepath.Join(dir, "junk")); err != nil {
		t.Fatal(err)
	}
	before := acked.Load()
	waitFor(t, "the log to resume", func() bool { return l.Err() == nil && acked.Load() > before+100 })
	close(stop)
	wg.Wait()
	if s := l.Stats(); !s.OutageSince.IsZero() {
		t.Fatalf("still in an outage: %+v", s)
	}
	s := l.Stats()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs := checkSet(t, path)
	outs := recordsOf(recs, EventOutage)
	var recorded int64
	for _, o := range outs {
		n, _ := strconv.ParseInt(o.Detail["refused"], 10, 64)
		recorded += n
	}
	msgs := int64(len(recordsOf(recs, EventMessage)))
	t.Logf("%d acknowledged, %d refused, %d outages (%d write failures), %d records on disk", acked.Load(), refused.Load(), len(outs), s.Failures, len(recs))
	if len(outs) == 0 || recorded != refused.Load() || int64(s.RefusedTotal) != refused.Load() {
		t.Fatalf("outage records say %d refused, Stats %d, appenders saw %d", recorded, s.RefusedTotal, refused.Load())
	}
	if msgs != acked.Load()+20 {
		t.Fatalf("%d message records on disk, %d acknowledged", msgs, acked.Load()+20)
	}
}
