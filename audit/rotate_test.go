package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkSet reads every file of the log at path (Segments, oldest first),
// checks each line and the chain across files, and returns the records.
// It is this package's own check of a rotated set (Verify checks one file
// from seq 1): the first file starts the chain at seq 1 from the genesis
// hash, or with a rotate record when older files were deleted by
// retention; every later file starts with a rotate record naming the
// previous file and its final seq and hash; seqs have no gaps; every
// log_start and rotate record carries the same log id.
func checkSet(t testing.TB, path string) []Record {
	t.Helper()
	files, err := Segments(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files for %s", path)
	}
	var all []Record
	var seq uint64
	prev, logID := GenesisHash, ""
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		if len(data) == 0 || data[len(data)-1] != '\n' {
			t.Fatalf("%s: empty or torn (%d bytes)", name, len(data))
		}
		for j, line := range bytes.Split(data[:len(data)-1], []byte("\n")) {
			r, err := parseLine(line)
			if err != nil {
				t.Fatalf("%s line %d: %v", name, j+1, err)
			}
			if j == 0 {
				switch {
				case i == 0 && r.Event == EventRotate:
					if r.Detail["prev_seq"] != strconv.FormatUint(r.Seq-1, 10) || r.Detail["prev_hash"] != r.Prev {
						t.Fatalf("%s: rotate record %v does not match its own seq %d / prev", name, r.Detail, r.Seq)
					}
					seq, prev = r.Seq-1, r.Prev // the files before were deleted
				case i > 0:
					if r.Event != EventRotate || r.Detail["prev_file"] != filepath.Base(files[i-1]) ||
						r.Detail["prev_seq"] != strconv.FormatUint(seq, 10) || r.Detail["prev_hash"] != prev {
						t.Fatalf("%s: first record %s %v does not continue %s (seq %d, hash %.12s)", name, r.Event, r.Detail, filepath.Base(files[i-1]), seq, prev)
					}
				}
			}
			if r.Seq != seq+1 || r.Prev != prev {
				t.Fatalf("%s line %d: seq %d prev %.12s; chain expects seq %d prev %.12s", name, j+1, r.Seq, r.Prev, seq+1, prev)
			}
			if r.Event == EventLogStart || r.Event == EventRotate {
				switch id := r.Detail["log_id"]; {
				case len(id) != 32:
					t.Fatalf("%s line %d: log id %q is not 16 bytes of hex", name, j+1, id)
				case logID == "":
					logID = id
				case id != logID:
					t.Fatalf("%s line %d: log id %s, the set's is %s", name, j+1, id, logID)
				}
			}
			seq, prev = r.Seq, r.Hash
			all = append(all, r)
		}
	}
	return all
}

// testClock is a settable clock for Options.Now.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := new(testClock)
	c.set(t)
	return c
}
func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func recordsOf(recs []Record, e Event) []Record {
	return filterRecords(recs, func(r Record) bool { return r.Event == e })
}

func filterRecords(recs []Record, keep func(Record) bool) []Record {
	var out []Record
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	var rotations []uint64
	var mu sync.Mutex
	l, err := Open(path, Options{RotateSize: 4 << 10, OnRotate: func(seq uint64, hash string) {
		mu.Lock()
		rotations = append(rotations, seq)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := l.ID()
	appendN(t, l, 100) // ~650 bytes each: a rotation every ~7 records
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := Segments(path)
	if len(files) < 10 || files[len(files)-1] != path {
		t.Fatalf("Segments = %v; want many rotated files, then the active file", files)
	}
	for _, f := range files[:len(files)-1] {
		fi, _ := os.Stat(f)
		if fi.Size() < 4<<10 || fi.Size() > 4<<10+MaxLineLen || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %d bytes, mode %v", filepath.Base(f), fi.Size(), fi.Mode())
		}
		if !strings.HasPrefix(filepath.Base(f), "audit.jsonl.") {
			t.Errorf("rotated name %s", f)
		}
	}
	recs := checkSet(t, path)
	if len(recs) != 1+100+len(files)-1 {
		t.Fatalf("%d records in %d files", len(recs), len(files))
	}
	rot := recordsOf(recs, EventRotate)
	mu.Lock()
	defer mu.Unlock()
	if len(rot) != len(files)-1 || len(rotations) != len(rot) {
		t.Fatalf("%d rotate records, %d OnRotate calls, %d files", len(rot), len(rotations), len(files))
	}
	for i, r := range rot {
		if rotations[i] != r.Seq || r.Detail["log_id"] != id {
			t.Fatalf("OnRotate %d got seq %d, rotate record is %d (log id %s, want %s)", i, rotations[i], r.Seq, r.Detail["log_id"], id)
		}
	}
}

func TestRotateNow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	clock := newTestClock(time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC))
	var got struct {
		seq  uint64
		hash string
	}
	l, err := Open(path, Options{Now: clock.now, OnRotate: func(seq uint64, hash string) { got.seq, got.hash = seq, hash }})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	oldSeq, oldHash := l.Head()
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	rotated := path + ".20260506T070809.123456789Z"
	if files, _ := Segments(path); len(files) != 2 || files[0] != rotated || files[1] != path {
		t.Fatalf("Segments = %v", files)
	}
	seq, hash := l.Head()
	if seq != oldSeq+1 || got.seq != seq || got.hash != hash {
		t.Fatalf("head %d %s, OnRotate %d %s; want the rotate record, seq %d", seq, hash, got.seq, got.hash, oldSeq+1)
	}
	// Same instant again: the name still sorts after the first.
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Second)
	appendN(t, l, 1)
	l.Close()
	files, _ := Segments(path)
	if len(files) != 3 || files[1] != path+".20260506T070809.123456790Z" {
		t.Fatalf("Segments = %v", files)
	}
	recs := checkSet(t, path)
	r := recs[4]
	if r.Event != EventRotate || r.Detail["prev_file"] != filepath.Base(rotated) || r.Detail["prev_seq"] != strconv.FormatUint(oldSeq, 10) || r.Detail["prev_hash"] != oldHash {
		t.Fatalf("rotate record %+v", r)
	}
	// The active file starts with a rotate record; the active path is what
	// readers tail.
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data[:bytes.IndexByte(data, '\n')], []byte(`"event":"rotate"`)) {
		t.Fatalf("active file does not start with a rotate record: %s", data)
	}
	// Reopen: the chain head and log id come from the set.
	l2 := openTest(t, path)
	if s, _ := l2.Head(); s != recs[len(recs)-1].Seq || l2.ID() != r.Detail["log_id"] {
		t.Fatalf("reopened: head %d id %s", s, l2.ID())
	}
}

func TestRotateDaily(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	clock := newTestClock(time.Date(2026, 5, 6, 23, 59, 59, 0, time.UTC))
	l, err := Open(path, Options{Now: clock.now, RotateDaily: true})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	clock.set(time.Date(2026, 5, 7, 0, 0, 1, 0, time.UTC))
	appendN(t, l, 1) // the first write after midnight rotates first
	appendN(t, l, 2) // same day: no rotation
	files, _ := Segments(path)
	if len(files) != 2 || filepath.Base(files[0]) != "audit.jsonl.20260507T000001.000000000Z" {
		t.Fatalf("Segments = %v", files)
	}
	l.Close()
	// A restart on a later day: the first write rotates.
	clock.set(time.Date(2026, 5, 9, 12, 0, 0, 0, time.UTC))
	l, err = Open(path, Options{Now: clock.now, RotateDaily: true})
	if err != nil {
		t.Fatal(err)
	}
	if files, _ := Segments(path); len(files) != 2 {
		t.Fatalf("Open alone rotated: %v", files)
	}
	appendN(t, l, 1)
	l.Close()
	files, _ = Segments(path)
	if len(files) != 3 {
		t.Fatalf("Segments = %v", files)
	}
	recs := checkSet(t, path)
	for i, f := range files {
		data, _ := os.ReadFile(f)
		t.Logf("%s: %d lines", filepath.Base(f), bytes.Count(data, []byte("\n")))
		if i == 0 && bytes.Count(data, []byte("\n")) != 3 { // log_start + 2
			t.Errorf("first file has the wrong records")
		}
	}
	if len(recs) != 1+2+1+3+1+1 {
		t.Fatalf("%d records", len(recs))
	}
}

// retentionWatch returns an onWrite hook that checks, for every retention
// record written, that the file it names still exists (audit before
// action), and counts them.
func retentionWatch(t *testing.T, dir string, seen *atomic.Int32) func([]byte) {
	return func(p []byte) {
		for _, line := range bytes.Split(bytes.TrimSuffix(p, []byte("\n")), []byte("\n")) {
			r, err := parseLine(line)
			if err != nil || r.Event != EventRetention {
				continue
			}
			seen.Add(1)
			if _, err := os.Stat(filepath.Join(dir, r.Detail["deleted"])); err != nil {
				t.Errorf("retention record for %s written after the file was deleted: %v", r.Detail["deleted"], err)
			}
		}
	}
}

func TestRetentionByCount(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	d := new(diskFaults)
	var seen atomic.Int32
	d.onWrite = retentionWatch(t, dir, &seen)
	l := openFaultLog(t, path, Options{Keep: 2}, d)
	type end struct {
		name string
		seq  uint64
		hash string
	}
	var ends []end
	for range 5 {
		appendN(t, l, 2)
		seq, hash := l.Head()
		if err := l.Rotate(); err != nil {
			t.Fatal(err)
		}
		files, _ := Segments(path)
		ends = append(ends, end{filepath.Base(files[len(files)-2]), seq, hash})
	}
	l.Close()
	files, _ := Segments(path)
	if len(files) != 3 || filepath.Base(files[0]) != ends[3].name || filepath.Base(files[1]) != ends[4].name {
		t.Fatalf("Segments = %v; want the 2 newest rotated files and the active one", files)
	}
	recs := checkSet(t, path)
	ret := recordsOf(recs, EventRetention)
	// Rotations 3, 4 and 5 each deleted the oldest file; each retention
	// record went into the then active file, all of which are kept.
	if seen.Load() != 3 || len(ret) != 3 {
		t.Fatalf("%d retention records written, %d in the set; want 3", seen.Load(), len(ret))
	}
	for _, r := range ret {
		var e *end
		for i := range ends {
			if ends[i].name == r.Detail["deleted"] {
				e = &ends[i]
			}
		}
		if e == nil || r.Detail["last_seq"] != strconv.FormatUint(e.seq, 10) || r.Detail["last_hash"] != e.hash {
			t.Fatalf("retention record %v does not describe a deleted file's final record", r.Detail)
		}
		if _, err := os.Stat(filepath.Join(dir, e.name)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s is still there", e.name)
		}
	}
}

func TestRetentionByAge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	clock := newTestClock(time.Date(2026, 5, 6, 0, 0, 0, 0, time.UTC))
	d := new(diskFaults)
	var seen atomic.Int32
	d.onWrite = retentionWatch(t, dir, &seen)
	l := openFaultLog(t, path, Options{Now: clock.now, KeepAge: time.Hour}, d)
	rotateAt := func(at time.Duration) {
		clock.set(time.Date(2026, 5, 6, 0, 0, 0, 0, time.UTC).Add(at))
		appendN(t, l, 1)
		if err := l.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	rotateAt(0)
	rotateAt(30 * time.Minute)
	rotateAt(50 * time.Minute)
	if files, _ := Segments(path); len(files) != 4 {
		t.Fatalf("nothing is an hour old yet: %v", files)
	}
	rotateAt(80 * time.Minute) // the 00:00 file is 80 min old; 00:30 is 50 min
	files, _ := Segments(path)
	if len(files) != 4 || !strings.HasSuffix(files[0], ".20260506T003000.000000000Z") {
		t.Fatalf("Segments = %v; want the 00:00 file deleted", files)
	}
	rotateAt(200 * time.Minute) // everything rotated before 02:20 goes
	files, _ = Segments(path)
	if len(files) != 2 || !strings.HasSuffix(files[0], ".20260506T032000.000000000Z") {
		t.Fatalf("Segments = %v", files)
	}
	l.Close()
	checkSet(t, path)
	if seen.Load() != 4 {
		t.Fatalf("%d retention records, want 4", seen.Load())
	}
}

// A crash (or a hand rotation) between renaming the active file and
// writing the new one's first record: Open starts the new file with a
// rotate record continuing the newest rotated file.
func TestOpenContinuesAfterRename(t *testing.T) {
	for _, c := range []string{"missing", "empty"} {
		t.Run(c, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.jsonl")
			l := openTest(t, path)
			appendN(t, l, 3)
			id := l.ID()
			seq, hash := l.Head()
			l.Close()
			rotated := path + ".20260101T000000.000000000Z"
			if err := os.Rename(path, rotated); err != nil {
				t.Fatal(err)
			}
			if c == "empty" {
				os.WriteFile(path, nil, 0o600)
			}
			l2 := openTest(t, path)
			if s, _ := l2.Head(); s != seq+1 || l2.ID() != id {
				t.Fatalf("head %d, id %s; want %d, %s", s, l2.ID(), seq+1, id)
			}
			appendN(t, l2, 1)
			l2.Close()
			recs := checkSet(t, path)
			r := recs[seq]
			if r.Event != EventRotate || r.Detail["prev_file"] != filepath.Base(rotated) || r.Detail["prev_seq"] != strconv.FormatUint(seq, 10) || r.Detail["prev_hash"] != hash {
				t.Fatalf("first record of the new file: %+v", r)
			}
		})
	}
}

// A crash in the middle of a rotation, before the new file replaced the
// active one: the active file is also linked under its rotated name and
// the new file waits as <path>.rotating. Open undoes it.
func TestOpenUndoesInterruptedRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l := openTest(t, path)
	appendN(t, l, 3)
	l.Close()
	link := path + ".20260101T000000.000000000Z"
	if err := os.Link(path, link); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path+rotatingSuffix, []byte(`{"half":"a rotate record"}`+"\n"), 0o600)
	if files, _ := Segments(path); len(files) != 1 || files[0] != path {
		t.Fatalf("Segments during the interrupted rotation = %v; want the active file once", files)
	}
	l2 := openTest(t, path)
	for _, p := range []string{link, path + rotatingSuffix} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s left behind: %v", p, err)
		}
	}
	appendN(t, l2, 1)
	if err := l2.Rotate(); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	if recs := checkSet(t, path); len(recs) != 6 {
		t.Fatalf("%d records", len(recs))
	}
}

func TestSegmentsLists(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	if files, err := Segments(path); err != nil || len(files) != 0 {
		t.Fatalf("Segments of nothing = %v, %v", files, err)
	}
	for _, n := range []string{
		"audit.jsonl.20260102T000000.000000000Z",
		"audit.jsonl.20260101T000000.000000000Z",
		"audit.jsonl.20260101T000000.000000001Z",
		"audit.jsonl.torn-20260101T000000Z-1",         // quarantine
		"audit.jsonl.torn-20260101T000000Z-2.pending", // quarantine being recorded
		"audit.jsonl.cli-20260101T000000Z-42",         // a CLI's own log
		"audit.jsonl.rotating",
		"audit.jsonl.20260101T000000Z",
		"audit.jsonl.20260101T000000.000000000Z.gz",
		"audit.jsonl.2026-01-01",
		"other.jsonl.20260101T000000.000000000Z",
	} {
		os.WriteFile(filepath.Join(dir, n), []byte("x\n"), 0o600)
	}
	want := []string{
		filepath.Join(dir, "audit.jsonl.20260101T000000.000000000Z"),
		filepath.Join(dir, "audit.jsonl.20260101T000000.000000001Z"),
		filepath.Join(dir, "audit.jsonl.20260102T000000.000000000Z"),
	}
	if files, err := Segments(path); err != nil || fmt.Sprint(files) != fmt.Sprint(want) {
		t.Fatalf("Segments without an active file = %v, %v; want %v", files, err, want)
	}
	os.WriteFile(path, nil, 0o600)
	if files, _ := Segments(path); fmt.Sprint(files) != fmt.Sprint(append(want, path)) {
		t.Fatalf("Segments = %v", files)
	}
}

// Appends from many goroutines while rotations happen (by size and by
// Rotate): every acknowledged record is in the set exactly once, in chain
// order.
func TestRotateConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path, Options{RotateSize: 16 << 10, Keep: 0})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 16, 50
	acked := make(chan Record, goroutines*each)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r := sampleRecord(i)
				r.Session = fmt.Sprintf("g%d-%d", g, i)
				if err := l.Append(context.Background(), r); err != nil {
					t.Error(err)
					return
				}
				acked <- *r
			}
		})
	}
	stop := make(chan struct{})
	rotated := make(chan int)
	go func() {
		n := 0
		defer func() { rotated <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := l.Rotate(); err != nil {
				t.Error(err)
				return
			}
			n++
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	t.Logf("%d Rotate calls, %d rotations", <-rotated, l.Stats().Rotations)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	close(acked)
	recs := checkSet(t, path)
	bySeq := map[uint64]Record{}
	for _, r := range recs {
		bySeq[r.Seq] = r
	}
	n := 0
	for a := range acked {
		n++
		if r, ok := bySeq[a.Seq]; !ok || r.Hash != a.Hash || r.Session != a.Session {
			t.Fatalf("acknowledged record seq %d (%s) is not in the set as acknowledged", a.Seq, a.Session)
		}
	}
	if got := len(filterRecords(recs, func(r Record) bool { return r.Event == EventMessage })); got != n || n != goroutines*each {
		t.Fatalf("%d message records, %d acknowledged", got, n)
	}
}
