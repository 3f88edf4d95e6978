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
	"testing"
	"time"
)

// The helpers here are prefixed tail* so that these tests depend only on
// Open and Append.

// tailTestRecord is record i of a test log: sessions s0, s1, s2 in turn.
func tailTestRecord(i int) *Record {
	return &Record{
		Event: EventMessage, User: "alice", Session: fmt.Sprintf("s%d", i%3),
		Engineer: "dbg@laptop", Target: "app@prod1", Cluster: "eu", Decision: DecisionAllow,
		Op: "SPAWN_REQUEST", MFA: "erlang:process_info/2", Rule: "read-only",
		Args: fmt.Sprintf("[<0.%d.0>, memory]", i),
	}
}

func tailOpen(t *testing.T, path string) *Log {
	t.Helper()
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// tailAppend appends records from..from+n-1 (tailTestRecord numbering) to
// l, from up to 64 goroutines at once when n is large, so the writer
// batches fsyncs.
func tailAppend(t *testing.T, l *Log, from, n int) {
	t.Helper()
	workers := min(64, max(1, n/100))
	if workers == 1 {
		for i := from; i < from+n; i++ {
			if err := l.Append(context.Background(), tailTestRecord(i)); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := l.Append(context.Background(), tailTestRecord(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := from; i < from+n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// tailLog writes a closed log of n records and returns its path.
func tailLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tailAppend(t, l, 0, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// tailAll returns the records of path in file order, per Query.
func tailAll(t *testing.T, path string, f Filter) []Record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	if err := Query(bytes.NewReader(data), f, func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func tailCollect(t *testing.T, path string, o TailOptions) ([]Record, error) {
	t.Helper()
	var got []Record
	err := TailWith(context.Background(), path, o, func(r Record) error { got = append(got, r); return nil })
	return got, err
}

func tailSameRecords(t *testing.T, what string, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash || got[i].Args != want[i].Args {
			t.Fatalf("%s: record %d is seq %d %q, want seq %d %q", what, i, got[i].Seq, got[i].Args, want[i].Seq, want[i].Args)
		}
	}
}

func TestTailFromSeq(t *testing.T) {
	path := tailLog(t, 1000)
	all := tailAll(t, path, Filter{})
	for _, from := range []uint64{0, 1, 2, 499, 500, 999, 1000, 1001, 1002, 5000} {
		got, err := tailCollect(t, path, TailOptions{FromSeq: from})
		if err != nil {
			t.Fatalf("from %d: %v", from, err)
		}
		skip := 0
		for skip < len(all) && all[skip].Seq < from {
			skip++
		}
		tailSameRecords(t, fmt.Sprintf("from %d", from), got, all[skip:])
	}
	// TailFrom is the same thing.
	var got []Record
	if err := TailFrom(context.Background(), path, all[len(all)-3].Seq, false, func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	tailSameRecords(t, "TailFrom", got, all[len(all)-3:])
	// With a filter, and with -n: the last 2 of the s1 records from seq 990.
	got, err := tailCollect(t, path, TailOptions{FromSeq: 990, Filter: Filter{Session: "s1"}, Last: 2})
	if err != nil {
		t.Fatal(err)
	}
	var want []Record
	for _, r := range all {
		if r.Seq >= 990 && r.Session == "s1" {
			want = append(want, r)
		}
	}
	tailSameRecords(t, "from 990 s1 last 2", got, want[len(want)-2:])
}

// TestTailFromSeqSkips: the records before FromSeq are not parsed (a
// malformed early line does not matter), and an error after the skip still
// names its line counted from the start of the file.
func TestTailFromSeqSkips(t *testing.T) {
	path := tailLog(t, 1000)
	all := tailAll(t, path, Filter{}) // all[k-1] is line k
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	lines[2] = strings.Replace(lines[2], `"decision":"allow"`, `"decision":allow"`, 1)     // line 3
	lines[699] = strings.Replace(lines[699], `"decision":"allow"`, `"decision":allow"`, 1) // line 700
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := tailCollect(t, path, TailOptions{FromSeq: all[499].Seq}) // line 500
	if err == nil || !strings.Contains(err.Error(), "line 700:") {
		t.Fatalf("from line 500: %v, want an error at line 700", err)
	}
	tailSameRecords(t, "from line 500", got, all[499:699])
	if _, err := tailCollect(t, path, TailOptions{FromSeq: all[1].Seq}); err == nil || !strings.Contains(err.Error(), "line 3:") {
		t.Fatalf("from line 2: %v, want an error at line 3", err)
	}
	got, err = tailCollect(t, path, TailOptions{FromSeq: all[799].Seq})
	if err != nil {
		t.Fatalf("from line 800: %v", err)
	}
	tailSameRecords(t, "from line 800", got, all[799:])
}

// TestTailFromSeqGap: a file that starts after FromSeq (the earlier
// records were rotated into another file) is reported through Gap.
func TestTailFromSeqGap(t *testing.T) {
	path := tailLog(t, 10)
	all := tailAll(t, path, Filter{})
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	os.WriteFile(path, []byte(strings.Join(lines[4:], "")), 0o600) // from line 5
	first := all[4].Seq
	var gaps [][2]uint64
	got, err := tailCollect(t, path, TailOptions{FromSeq: first - 2, Gap: func(w, g uint64) { gaps = append(gaps, [2]uint64{w, g}) }})
	if err != nil {
		t.Fatal(err)
	}
	tailSameRecords(t, "from before the file", got, all[4:])
	if len(gaps) != 1 || gaps[0] != [2]uint64{first - 2, first} {
		t.Fatalf("gaps %v, want [[%d %d]]", gaps, first-2, first)
	}
	// No gap: FromSeq present, or -n moved the start on purpose.
	gaps = nil
	tailCollect(t, path, TailOptions{FromSeq: first + 1, Gap: func(w, g uint64) { gaps = append(gaps, [2]uint64{w, g}) }})
	tailCollect(t, path, TailOptions{FromSeq: first + 1, Last: 2, Gap: func(w, g uint64) { gaps = append(gaps, [2]uint64{w, g}) }})
	if len(gaps) != 0 {
		t.Fatalf("gaps %v, want none", gaps)
	}
}

func TestTailLast(t *testing.T) {
	path := tailLog(t, 3000) // > 64 KiB, so the backwards read takes several chunks
	all := tailAll(t, path, Filter{})
	for _, n := range []int{1, 2, 10, 700, 2999, 3000, 3001, 100000} {
		got, err := tailCollect(t, path, TailOptions{Last: n})
		if err != nil {
			t.Fatalf("last %d: %v", n, err)
		}
		tailSameRecords(t, fmt.Sprintf("last %d", n), got, all[len(all)-min(n, len(all)):])
	}
	// TailLast is the same; n <= 0 means all.
	var got []Record
	TailLast(context.Background(), path, 2, false, func(r Record) error { got = append(got, r); return nil })
	tailSameRecords(t, "TailLast 2", got, all[len(all)-2:])
	got = nil
	TailLast(context.Background(), path, 0, false, func(r Record) error { got = append(got, r); return nil })
	tailSameRecords(t, "TailLast 0", got, all)
	// With a filter: the last n matching records.
	f := Filter{Session: "s2"}
	match := tailAll(t, path, f)
	for _, n := range []int{1, 5, len(match), len(match) + 1} {
		got, err := tailCollect(t, path, TailOptions{Last: n, Filter: f})
		if err != nil {
			t.Fatalf("last %d s2: %v", n, err)
		}
		tailSameRecords(t, fmt.Sprintf("last %d s2", n), got, match[len(match)-min(n, len(match)):])
	}
	if got, err := tailCollect(t, path, TailOptions{Last: 3, Filter: Filter{User: "nobody"}}); err != nil || len(got) != 0 {
		t.Fatalf("last 3 nobody: %d, %v", len(got), err)
	}
	// TailNew without follow: nothing.
	if got, err := tailCollect(t, path, TailOptions{Last: TailNew}); err != nil || len(got) != 0 {
		t.Fatalf("TailNew: %d, %v", len(got), err)
	}
}

func TestTailLastTornFinalLine(t *testing.T) {
	path := tailLog(t, 5)
	all := tailAll(t, path, Filter{})
	next := all[len(all)-1].Seq + 1
	tornLine := fmt.Sprintf("line %d", len(all)+1)
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	fmt.Fprintf(f, `{"time":"2026-01-02T03:04:05Z","seq":%d,"ev`, next)
	f.Close()
	got, err := tailCollect(t, path, TailOptions{Last: 2})
	tailSameRecords(t, "last 2 of a torn log", got, all[len(all)-2:])
	if err == nil || !strings.Contains(err.Error(), tornLine) || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("last 2 of a torn log: %v, want the torn %s reported", err, tornLine)
	}
	if got, err := tailCollect(t, path, TailOptions{FromSeq: next}); len(got) != 0 || err == nil || !strings.Contains(err.Error(), tornLine) {
		t.Fatalf("from %d of a torn log: %d records, %v", next, len(got), err)
	}
}

func TestSeekSeqEdgeCases(t *testing.T) {
	path := tailLog(t, 50)
	all := tailAll(t, path, Filter{}) // all[k] starts at starts[k]
	data, _ := os.ReadFile(path)
	starts := []int64{0}
	for i, c := range data {
		if c == '\n' && i+1 < len(data) {
			starts = append(starts, int64(i+1))
		}
	}
	r := bytes.NewReader(data)
	for want := uint64(0); want <= all[len(all)-1].Seq+2; want++ {
		got, err := seekSeq(r, int64(len(data)), want)
		if err != nil {
			t.Fatal(err)
		}
		exp := int64(len(data))
		for k := range all {
			if all[k].Seq >= want {
				exp = starts[k]
				break
			}
		}
		if got != exp {
			t.Fatalf("seekSeq(%d) = %d, want %d", want, got, exp)
		}
	}
	if got, err := seekSeq(bytes.NewReader(nil), 0, 5); err != nil || got != 0 {
		t.Fatalf("seekSeq of an empty file = %d, %v", got, err)
	}
	if _, err := seekSeq(strings.NewReader("not json\nnot json\n"), 18, 5); !errors.Is(err, errSeqProbe) {
		t.Fatalf("seekSeq of garbage: %v", err)
	}
}

// tailFastPoll makes followers poll every 5 ms until the test ends. Call
// it before starting followers.
func tailFastPoll(t *testing.T) {
	old := TailPollInterval
	TailPollInterval = 5 * time.Millisecond
	t.Cleanup(func() { TailPollInterval = old })
}

// tailFollowWith runs TailWith with Follow on path until the test ends and
// returns the records it delivers. Call tailFastPoll first.
func tailFollowWith(t *testing.T, path string, o TailOptions) <-chan Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out := make(chan Record, 10000)
	done := make(chan error, 1)
	o.Follow = true
	go func() {
		done <- TailWith(ctx, path, o, func(r Record) error { out <- r; return nil })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("TailWith returned %v, want context.Canceled", err)
		}
	})
	return out
}

// tailExpect reads records from ch until one with Args want arrives, and
// returns the records read (it fails the test after a while).
func tailExpect(t *testing.T, ch <-chan Record, want string) []Record {
	t.Helper()
	var got []Record
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-ch:
			got = append(got, r)
			if r.Args == want {
				return got
			}
		case <-timeout:
			t.Fatalf("no record with args %q; got %d records", want, len(got))
		}
	}
}

func tailArgs(recs []Record) []string {
	var out []string
	for _, r := range recs {
		if strings.HasPrefix(r.Args, "[<0.") { // not the log's own records
			out = append(out, r.Args)
		}
	}
	return out
}

func tailArgsRange(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, tailTestRecord(i).Args)
	}
	return out
}

func tailSameArgs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func TestTailFromSeqFollow(t *testing.T) {
	tailFastPoll(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := tailOpen(t, path)
	tailAppend(t, l, 0, 10)
	head := tailAll(t, path, Filter{})
	h := head[len(head)-1].Seq // records 7, 8, 9 are h-2, h-1, h

	// From the middle: the rest, then what is appended.
	mid := tailFollowWith(t, path, TailOptions{FromSeq: h - 2})
	// Past the end (a shipper that shipped everything): only new records.
	next := tailFollowWith(t, path, TailOptions{FromSeq: h + 1})
	// Further ahead still: records below it are skipped as they come.
	ahead := tailFollowWith(t, path, TailOptions{FromSeq: h + 3})
	tailSameArgs(t, "from 8", tailArgs(tailExpect(t, mid, tailTestRecord(9).Args)), tailArgsRange(7, 9))

	tailAppend(t, l, 10, 3) // h+1 .. h+3
	tailSameArgs(t, "from 8, followed", tailArgs(tailExpect(t, mid, tailTestRecord(12).Args)), tailArgsRange(10, 12))
	tailSameArgs(t, "from 11", tailArgs(tailExpect(t, next, tailTestRecord(12).Args)), tailArgsRange(10, 12))
	tailSameArgs(t, "from 13", tailArgs(tailExpect(t, ahead, tailTestRecord(12).Args)), tailArgsRange(12, 12))
}

// TestTailFollowAcrossRotation: the active file is renamed and a new one
// started (as the writer's rotation does). Follow reads the old file to
// its end, including records that reached it after the last poll, then the
// new file from its start.
func TestTailFollowAcrossRotation(t *testing.T) {
	tailFastPoll(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tailAppend(t, l, 0, 5)
	before := tailAll(t, path, Filter{})
	ch := tailFollowWith(t, path, TailOptions{FromSeq: before[len(before)-2].Seq, Filter: Filter{User: "alice"}})
	tailSameArgs(t, "before rotation", tailArgs(tailExpect(t, ch, tailTestRecord(4).Args)), tailArgsRange(3, 4))
	l.Close()

	// Rename, a last record into the renamed file, then the new file: all
	// faster than a poll or two.
	old := path + ".20260102T030405Z"
	if err := os.Rename(path, old); err != nil {
		t.Fatal(err)
	}
	lo, err := Open(old, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tailAppend(t, lo, 5, 1)
	lo.Close()
	l2 := tailOpen(t, path)
	tailAppend(t, l2, 6, 2)
	tailSameArgs(t, "across rotation", tailArgs(tailExpect(t, ch, tailTestRecord(7).Args)), tailArgsRange(5, 7))

	// And again.
	l2.Close()
	os.Rename(path, path+".20260102T030406Z")
	l3 := tailOpen(t, path)
	tailAppend(t, l3, 8, 1)
	tailSameArgs(t, "second rotation", tailArgs(tailExpect(t, ch, tailTestRecord(8).Args)), tailArgsRange(8, 8))
}

// TestTailFollowPartialCutBack: a partial final line the follower is
// waiting for is cut away (crash recovery) and a complete record written in
// its place: the follower delivers that record, not a splice of both.
func TestTailFollowPartialCutBack(t *testing.T) {
	tailFastPoll(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tailAppend(t, l, 0, 3)
	l.Close()
	ch := tailFollowWith(t, path, TailOptions{Last: TailNew})
	fi, _ := os.Stat(path)
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time":"2026-01-02T03:04:05Z","seq":4,"event":"message","user":"mallory","args":"torn`)
	f.Close()
	time.Sleep(50 * time.Millisecond) // the follower reads the partial line
	if err := os.Truncate(path, fi.Size()); err != nil {
		t.Fatal(err)
	}
	l = tailOpen(t, path)
	tailAppend(t, l, 3, 2)
	got := tailExpect(t, ch, tailTestRecord(4).Args)
	tailSameArgs(t, "after the cut", tailArgs(got), tailArgsRange(3, 4))
	for _, r := range got {
		if r.User == "mallory" {
			t.Fatalf("delivered the cut partial line: %+v", r)
		}
	}
}

func TestTailNewFollow(t *testing.T) {
	tailFastPoll(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := tailOpen(t, path)
	tailAppend(t, l, 0, 3)
	ch := tailFollowWith(t, path, TailOptions{Last: TailNew})
	time.Sleep(100 * time.Millisecond) // the follower has found the end
	tailAppend(t, l, 3, 1)
	tailSameArgs(t, "new only", tailArgs(tailExpect(t, ch, tailTestRecord(3).Args)), tailArgsRange(3, 3))
}

// TestTailLastFollowWithFilter: the ring of the last n matching records is
// delivered, then the follow goes on from where the scan stopped.
func TestTailLastFollowWithFilter(t *testing.T) {
	tailFastPoll(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := tailOpen(t, path)
	tailAppend(t, l, 0, 30)
	ch := tailFollowWith(t, path, TailOptions{Last: 2, Filter: Filter{Session: "s0"}})
	tailSameArgs(t, "last 2 s0", tailArgs(tailExpect(t, ch, tailTestRecord(27).Args)), []string{tailTestRecord(24).Args, tailTestRecord(27).Args})
	tailAppend(t, l, 30, 4)
	tailSameArgs(t, "then s0", tailArgs(tailExpect(t, ch, tailTestRecord(33).Args)), []string{tailTestRecord(30).Args, tailTestRecord(33).Args})
}

// TestTailFromSeqFollowsLogRotate: with the writer's own rotation
// (Log.Rotate, when the Log has it), a follower from a seq delivers every
// record once, in order, across several rotations.
func TestTailFromSeqFollowsLogRotate(t *testing.T) {
	tailFastPoll(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := tailOpen(t, path)
	rot, ok := any(l).(interface{ Rotate() error })
	if !ok {
		t.Skip("this Log does not rotate")
	}
	tailAppend(t, l, 0, 5)
	before := tailAll(t, path, Filter{})
	from := before[len(before)-3].Seq
	ch := tailFollowWith(t, path, TailOptions{FromSeq: from})
	for round := range 4 {
		tailAppend(t, l, 5+round*20, 20)
		if err := rot.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	tailAppend(t, l, 100, 3)
	head, _ := l.Head()
	want := from
	timeout := time.After(20 * time.Second)
	for want <= head {
		select {
		case r := <-ch:
			if r.Seq != want {
				t.Fatalf("delivered seq %d, want %d", r.Seq, want)
			}
			want++
		case <-timeout:
			t.Fatalf("delivered up to seq %d of %d", want-1, head)
		}
	}
}

// tailRotatedLog writes a log of files of sizes... records each, rotating
// with Log.Rotate between them (skipping the test if the Log cannot), and
// returns the path and head seq. Record i of the whole log is
// tailTestRecord(i).
func tailRotatedLog(t *testing.T, sizes ...int) (string, uint64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := tailOpen(t, path)
	rot, ok := any(l).(interface{ Rotate() error })
	if !ok {
		t.Skip("this Log does not rotate")
	}
	i := 0
	for k, n := range sizes {
		if k > 0 {
			if err := rot.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		tailAppend(t, l, i, n)
		i += n
	}
	head, _ := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path, head
}

func tailSeqs(recs []Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func tailSeqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// TestTailAcrossRotatedFiles: --from-seq and -n reach back into the
// rotated files when the active one starts later or holds fewer records,
// then read forward to the end of the active file.
func TestTailAcrossRotatedFiles(t *testing.T) {
	path, head := tailRotatedLog(t, 10, 10, 5)
	// 3 files: log_start + 10, rotate + 10, rotate + 5.
	for _, from := range []uint64{2, 5, 11, 12, 13, 20, head, head + 1} {
		got, err := tailCollect(t, path, TailOptions{FromSeq: from})
		if err != nil {
			t.Fatalf("from %d: %v", from, err)
		}
		if !equalSeqs(tailSeqs(got), tailSeqRange(from, head)) {
			t.Fatalf("from %d: %v, want %d..%d", from, tailSeqs(got), from, head)
		}
	}
	for _, n := range []int{1, 6, 7, 8, 17, 18, 19, 25, 100} {
		got, err := tailCollect(t, path, TailOptions{Last: n})
		if err != nil {
			t.Fatalf("last %d: %v", n, err)
		}
		from := uint64(1)
		if uint64(n) < head {
			from = head - uint64(n) + 1
		}
		if !equalSeqs(tailSeqs(got), tailSeqRange(from, head)) {
			t.Fatalf("last %d: %v, want %d..%d", n, tailSeqs(got), from, head)
		}
	}
	// With a filter: the last n matching records of the whole set.
	all, err := tailCollect(t, path, TailOptions{FromSeq: 1, Last: 1000})
	if err != nil || len(all) != int(head) {
		t.Fatalf("all: %d records, %v", len(all), err)
	}
	f := Filter{Session: "s1"}
	var match []Record
	for _, r := range all {
		if f.Match(&r) {
			match = append(match, r)
		}
	}
	for _, n := range []int{1, 2, 3, 5, len(match), len(match) + 3} {
		got, err := tailCollect(t, path, TailOptions{Last: n, Filter: f})
		if err != nil {
			t.Fatalf("last %d s1: %v", n, err)
		}
		tailSameRecords(t, fmt.Sprintf("last %d s1", n), got, match[len(match)-min(n, len(match)):])
	}
}

// TestTailGapOverDeletedFile: a rotated file missing from the middle of
// the set is reported through Gap, and reading goes on.
func TestTailGapOverDeletedFile(t *testing.T) {
	path, head := tailRotatedLog(t, 4, 4, 4)
	// First file: log_start 1, records 2..5; the middle one: rotate 6 and
	// 7..10; the active one: rotate 11 and 12..15.
	rotated, _ := filepath.Glob(path + ".*")
	if len(rotated) != 2 || head != 15 {
		t.Fatalf("rotated files %v, head %d", rotated, head)
	}
	middle := rotated[1] // names sort by time

	// Deleted while the first file is being read: the reader goes from
	// the end of the first file to the active one.
	var gaps [][2]uint64
	var got []uint64
	err := TailWith(context.Background(), path, TailOptions{FromSeq: 3, Gap: func(w, g uint64) { gaps = append(gaps, [2]uint64{w, g}) }},
		func(r Record) error {
			got = append(got, r.Seq)
			if r.Seq == 5 {
				return os.Remove(middle)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 1 || gaps[0] != [2]uint64{6, 11} || !equalSeqs(got, append(tailSeqRange(3, 5), tailSeqRange(11, 15)...)) {
		t.Fatalf("gaps %v, seqs %v; want [[6 11]], 3..5 11..15", gaps, got)
	}

	// Deleted before: the chain back from the active file stops at the
	// hole, so seq 3 is not found.
	gaps = nil
	recs, err := tailCollect(t, path, TailOptions{FromSeq: 3, Gap: func(w, g uint64) { gaps = append(gaps, [2]uint64{w, g}) }})
	if err != nil || len(gaps) != 1 || gaps[0] != [2]uint64{3, 11} || !equalSeqs(tailSeqs(recs), tailSeqRange(11, 15)) {
		t.Fatalf("gaps %v, seqs %v, %v; want [[3 11]], 11..15", gaps, tailSeqs(recs), err)
	}
}
