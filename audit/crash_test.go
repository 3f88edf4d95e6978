//go:build unix

package audit

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv names the log a crash-test child appends to.
const crashChildEnv = "BEAMGATE_AUDIT_CRASH_CHILD"

// TestCrashChild is the helper process of TestCrashSIGKILL: it opens the
// log, then appends from several goroutines (some records large, so a
// write can be cut short), rotates often, and prints "seq hash" for every
// acknowledged record, until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process for TestCrashSIGKILL")
	}
	// Writes go to the file in 4 KiB syscalls, a little apart, as a large
	// write can reach the disk in pieces: a kill then tears a record.
	l, err := openLog(path, Options{RotateSize: 256 << 10, Keep: 6}, func(f logFile) logFile { return chunkedFile{f} })
	if err != nil {
		fmt.Fprintln(os.Stderr, "child Open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := os.Stdout
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				r := sampleRecord(i)
				if g == 0 {
					r.Args = strings.Repeat("a", 100<<10)
				}
				if err := l.Append(context.Background(), r); err != nil {
					fmt.Fprintln(os.Stderr, "child Append:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %s\n", r.Seq, r.Hash)
				mu.Unlock()
			}
		}()
	}
	go func() {
		for {
			time.Sleep(3 * time.Millisecond)
			if err := l.Rotate(); err != nil {
				fmt.Fprintln(os.Stderr, "child Rotate:", err)
				os.Exit(5)
			}
		}
	}()
	select {}
}

// chunkedFile writes in 4 KiB pieces with a pause between them.
type chunkedFile struct{ logFile }

func (f chunkedFile) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), 4<<10)
		m, err := f.logFile.Write(p[:c])
		n += m
		if err != nil {
			return n, err
		}
		p = p[c:]
		time.Sleep(20 * time.Microsecond)
	}
	return n, nil
}

// TestCrashSIGKILL kills a process appending to the log at random moments
// (during its Open, its appends, its rotations), 20 times. After each
// kill, Open must accept the log unattended, the whole set must chain,
// and every record the child saw acknowledged must be in it.
func TestCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process 20 times")
	}
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	acked := map[uint64]string{}
	quarantines := map[string]Record{} // every recovered record seen, by quarantine file
	var recovered, maxSeq int
	for kill := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.v=false")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan []string, 1)
		go func() {
			var got []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				got = append(got, sc.Text())
			}
			lines <- got
		}()
		delay := time.Duration(rng.IntN(300)) * time.Millisecond
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		got := <-lines
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("kill %d: child ended by itself (%v): %s", kill, err, stderr.String())
		}
		for _, line := range got {
			seqS, hash, ok := strings.Cut(line, " ")
			seq, err := strconv.ParseUint(seqS, 10, 64)
			if !ok || err != nil || len(hash) != 64 {
				continue // a line cut by the kill, or test output
			}
			acked[seq] = hash
		}

		// Unattended restart.
		l, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("kill %d after %v: Open refused the log: %v", kill, delay, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		recs := checkSet(t, path)
		bySeq := make(map[uint64]string, len(recs))
		for _, r := range recs {
			bySeq[r.Seq] = r.Hash
		}
		first := recs[0].Seq
		for seq, hash := range acked {
			if seq < first {
				continue // deleted by retention since
			}
			if bySeq[seq] != hash {
				t.Fatalf("kill %d: acknowledged record %d is not on disk as acknowledged", kill, seq)
			}
		}
		recovered = len(recordsOf(recs, EventRecovered))
		for _, r := range recordsOf(recs, EventRecovered) {
			quarantines[r.Detail["quarantine"]] = r
		}
		maxSeq = int(recs[len(recs)-1].Seq)
		t.Logf("kill %d after %v: %d acknowledged so far, head %d, %d torn tails recovered in the kept files", kill, delay, len(acked), maxSeq, recovered)
	}
	// Never silently: every quarantine file is named by a recovered record
	// giving its length and hash.
	q, _ := filepath.Glob(path + ".torn-*")
	for _, f := range q {
		r, ok := quarantines[filepath.Base(f)]
		data, _ := os.ReadFile(f)
		sum := sha256.Sum256(data)
		if !ok || r.Detail["torn_bytes"] != strconv.Itoa(len(data)) || r.Detail["torn_sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s (%d bytes) is not recorded as recovered: %v", filepath.Base(f), len(data), r.Detail)
		}
	}
	if len(q) == 0 {
		t.Error("no kill tore a record: the torn-tail recovery was not exercised")
	}
	t.Logf("20 kills: %d records acknowledged, head seq %d, %d torn tails quarantined and recorded", len(acked), maxSeq, len(q))
}
