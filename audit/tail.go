package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// TailNew as [TailOptions.Last] skips every record already in the file:
// with Follow, only records appended later are delivered.
const TailNew = -1

// TailOptions select where [TailWith] starts and what it delivers.
type TailOptions struct {
	// Filter selects the records delivered (the zero Filter passes all).
	Filter Filter
	// FromSeq > 0 starts at the first record whose Seq is at least
	// FromSeq; records before it are skipped, found by a binary search over
	// the file's line starts (Seq grows within a file), not by parsing
	// them. If the active file starts after FromSeq, the rotated files
	// (named by each file's first, rotate, record) are searched back for
	// it. Once that record has been seen, every later record is delivered.
	FromSeq uint64
	// Gap, if set, is called when records are missing from what is read:
	// the first record at or after FromSeq has a Seq above it, or the next
	// file of a rotation does not continue at the last Seq read + 1 (a
	// rotated file was deleted before it could be read). Records
	// want..got-1 were not seen. It is not called for a start that Last
	// moved past FromSeq.
	Gap func(want, got uint64)
	// Last limits the records already in the log (after FromSeq and
	// Filter) to the last Last of them; 0 means all and [TailNew] none.
	// Without a Filter the start is found by reading the file backwards
	// from its end (and the rotated files before it, if it holds fewer);
	// with one, the file is scanned keeping at most Last records.
	Last int
	// Follow keeps delivering records appended later, across rotation,
	// until ctx ends (TailWith then returns ctx's error) or fn fails.
	Follow bool
}

// TailFrom streams the records of the audit log at path from the first one
// whose Seq is at least fromSeq, then, with follow, the records appended
// later (see [TailWith]). A log shipper resumes with fromSeq = the last Seq
// it shipped + 1.
func TailFrom(ctx context.Context, path string, fromSeq uint64, follow bool, fn func(Record) error) error {
	return TailWith(ctx, path, TailOptions{FromSeq: fromSeq, Follow: follow}, fn)
}

// TailLast streams the last n records of the audit log at path (all of
// the active file if n <= 0), then, with follow, the records appended
// later.
func TailLast(ctx context.Context, path string, n int, follow bool, fn func(Record) error) error {
	if n <= 0 {
		n = 0
	}
	return TailWith(ctx, path, TailOptions{Last: n, Follow: follow}, fn)
}

// TailWith streams records of the audit log at path to fn as o says. Like
// [Query] it parses lines without checking the hash chain (Verify's job).
//
// It reads the active file at path, and before it the rotated files that
// FromSeq or Last reach back to, found through the rotate record that
// starts each file. Without Follow it stops at the end of the active file;
// a torn final line is then an error. With Follow it polls every
// [TailPollInterval]: a line still being written is waited for (and read
// again from its start if the file was cut back below it, as crash
// recovery does); when path is replaced by a new file (rotation), the old
// file is read to its end, then the file that continues it (through the
// rotate records, in case path was rotated more than once meanwhile), and
// so on up to the active one. Errors name lines counted from the start of
// their file, even when its start was skipped.
func TailWith(ctx context.Context, path string, o TailOptions, fn func(Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	t := &tailer{path: path, o: o, fn: fn, f: f, started: o.FromSeq <= 1}
	defer func() { t.f.Close() }()
	if err := t.start(); err != nil {
		return err
	}
	return t.run(ctx)
}

// maxChain bounds how many rotated files a tail walks back through.
const maxChain = 100000

// tailer is the state of one TailWith.
type tailer struct {
	path string
	o    TailOptions
	fn   func(Record) error

	f        *os.File // being read: the active file, or a rotated one
	lr       *lineReader
	base     int64 // offset in f where lr started (a line start)
	absLines bool  // lr counts lines from the start of f (else from base)

	lastSeq  uint64 // Seq of the last record read (delivered or not)
	haveLast bool
	switched bool // f was just switched to the next file: check for a gap

	started bool     // a record with Seq >= FromSeq has been seen
	noGap   bool     // the start was moved past FromSeq's record on purpose
	initial bool     // still reading the records present at the start
	ringOn  bool     // keep the last Last records while initial (a Filter is set)
	ring    []Record // grows up to Last, then is overwritten in turn
	ringN   int      // records pushed into ring
	first   *Record  // first record of the file the ring scan started in
}

// start positions t at the first line to read.
func (t *tailer) start() error {
	t.initial = true
	switch {
	case t.o.Last < 0: // TailNew: the end of the active file
		size, err := fileSize(t.f)
		if err != nil {
			return err
		}
		end, _, err := lastLinesStart(t.f, size, 0)
		if err != nil {
			return err
		}
		t.noteBefore(end)
		return t.reset(end)
	case t.o.Last > 0 && filterIsZero(t.o.Filter):
		// The last Last lines, from the older files too if need be; the
		// FromSeq gate drops those below FromSeq.
		off, err := t.lastN(t.o.Last)
		if err != nil {
			return err
		}
		t.noGap = true
		t.noteBefore(off)
		return t.reset(off)
	}
	if t.o.Last > 0 {
		t.ringOn = true
	}
	var off int64
	if t.o.FromSeq > 1 {
		t.walkBackTo(t.o.FromSeq)
		size, err := fileSize(t.f)
		if err != nil {
			return err
		}
		// A line whose seq cannot be read without parsing it makes the
		// search give up: reading from the start reports it properly.
		if o, err := seekSeq(t.f, size, t.o.FromSeq); err == nil {
			off = o
		}
	} else if t.ringOn {
		if r, ok := firstRecord(t.f); ok {
			t.first = &r
		}
	}
	t.noteBefore(off)
	return t.reset(off)
}

// noteBefore records the seq of the last complete line before off, where
// reading starts, so that following knows which file continues it.
func (t *tailer) noteBefore(off int64) {
	if off == 0 {
		return
	}
	if ls, _, err := lastLinesStart(t.f, off, 1); err == nil {
		if seq, err := seqAt(t.f, ls, make([]byte, 128)); err == nil {
			t.lastSeq, t.haveLast = seq, true
		}
	}
}

// lastN makes t.f the file in which the last n lines of the log start
// (the active file, or a rotated one before it if the active one holds
// fewer) and returns the offset there.
func (t *tailer) lastN(n int) (int64, error) {
	for range maxChain {
		size, err := fileSize(t.f)
		if err != nil {
			return 0, err
		}
		off, found, err := lastLinesStart(t.f, size, n)
		if err != nil || found >= n {
			return off, err
		}
		if !t.toPrev() {
			return 0, nil
		}
		n -= found
	}
	return 0, nil
}

// walkBackTo makes t.f the newest file whose first record's Seq is at most
// seq (or the oldest there is).
func (t *tailer) walkBackTo(seq uint64) {
	for range maxChain {
		if r, ok := firstRecord(t.f); !ok || r.Seq <= seq || !t.toPrev() {
			return
		}
	}
}

// toPrev replaces t.f by the rotated file its first record names, if
// there is one.
func (t *tailer) toPrev() bool {
	r, ok := firstRecord(t.f)
	if !ok {
		return false
	}
	prev, _, ok := prevFile(t.path, r)
	if !ok {
		return false
	}
	pf, err := os.Open(prev)
	if err != nil {
		return false
	}
	t.f.Close()
	t.f = pf
	return true
}

// successor opens the file that continues the one just read (t.f, replaced
// at path): the file at path, or, if path was rotated again meanwhile, the
// oldest rotated file after t.f, found back through the rotate records.
func (t *tailer) successor() (*os.File, error) {
	cur, err := os.Open(t.path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if !t.haveLast {
		return cur, nil
	}
	old, _ := t.f.Stat()
	for range maxChain {
		r, ok := firstRecord(cur)
		if !ok {
			return cur, nil
		}
		prev, prevSeq, ok := prevFile(t.path, r)
		if !ok || prevSeq <= t.lastSeq {
			return cur, nil
		}
		pf, err := os.Open(prev)
		if err != nil {
			return cur, nil // deleted (retention): the gap is reported
		}
		if fi, err := pf.Stat(); err != nil || old != nil && os.SameFile(fi, old) {
			pf.Close()
			return cur, nil
		}
		cur.Close()
		cur = pf
	}
	return cur, nil
}

// firstRecord parses the first line of f.
func firstRecord(f *os.File) (Record, bool) {
	r, err := readRecord(newLineReader(io.NewSectionReader(f, 0, 1<<62)))
	return r, err == nil
}

// prevFile returns the rotated file a rotate record r (the first record of
// a file of the log at path) names, and the last Seq in it.
func prevFile(path string, r Record) (string, uint64, bool) {
	name := r.Detail["prev_file"]
	if r.Event != EventRotate || name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(r.Detail["prev_seq"], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return filepath.Join(filepath.Dir(path), name), seq, true
}

func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	return fi.Size(), nil
}

// reset makes t read f from off, a line start.
func (t *tailer) reset(off int64) error {
	if _, err := t.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	t.base, t.lr, t.absLines = off, newLineReader(t.f), off == 0
	return nil
}

// next switches t to the file that continues t.f.
func (t *tailer) next() error {
	nf, err := t.successor()
	if err != nil {
		return err
	}
	t.f.Close()
	t.f = nf
	t.switched = true
	return t.reset(0)
}

func (t *tailer) gap(want, got uint64) {
	if t.o.Gap != nil {
		t.o.Gap(want, got)
	}
}

// read notes r, read from t.f, and passes it on.
func (t *tailer) read(r Record) error {
	if t.switched {
		t.switched = false
		if t.haveLast && r.Seq > t.lastSeq+1 && t.started {
			t.gap(t.lastSeq+1, r.Seq)
		}
	}
	t.lastSeq, t.haveLast = r.Seq, true
	return t.emit(r)
}

// emit passes r through the FromSeq gate and the filter.
func (t *tailer) emit(r Record) error {
	if !t.started {
		if r.Seq < t.o.FromSeq {
			return nil
		}
		t.started = true
		if r.Seq > t.o.FromSeq && !t.noGap {
			t.gap(t.o.FromSeq, r.Seq)
		}
	}
	if !t.o.Filter.Match(&r) {
		return nil
	}
	if t.initial && t.ringOn {
		if len(t.ring) < t.o.Last {
			t.ring = append(t.ring, r)
		} else {
			t.ring[t.ringN%len(t.ring)] = r
		}
		t.ringN++
		return nil
	}
	return t.fn(r)
}

// endInitial delivers the ring once the records present at the start have
// been read, preceded by matches from older files if the active one had
// fewer than Last.
func (t *tailer) endInitial() error {
	if !t.initial {
		return nil
	}
	t.initial = false
	if !t.ringOn {
		return nil
	}
	ring := t.ring
	t.ring = nil
	if len(ring) < t.o.Last && t.first != nil {
		older, err := t.olderMatches(*t.first, t.o.Last-len(ring))
		if err != nil {
			return err
		}
		for _, r := range older {
			if err := t.fn(r); err != nil {
				return err
			}
		}
	}
	for i := t.ringN - len(ring); i < t.ringN; i++ {
		if err := t.fn(ring[i%len(ring)]); err != nil {
			return err
		}
	}
	return nil
}

// olderMatches returns, in log order, the last need records matching the
// filter in the rotated files before the file whose first record is first.
func (t *tailer) olderMatches(first Record, need int) ([]Record, error) {
	var chunks [][]Record // newest file first
	for range maxChain {
		if need <= 0 {
			break
		}
		prev, _, ok := prevFile(t.path, first)
		if !ok {
			break
		}
		f, err := os.Open(prev)
		if err != nil {
			break
		}
		var ring []Record
		n, gotFirst := 0, false
		err = Query(f, Filter{}, func(r Record) error {
			if !gotFirst {
				first, gotFirst = r, true
			}
			if !t.o.Filter.Match(&r) {
				return nil
			}
			if len(ring) < need {
				ring = append(ring, r)
			} else {
				ring[n%need] = r
			}
			n++
			return nil
		})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prev, err)
		}
		ordered := make([]Record, 0, len(ring))
		for i := n - len(ring); i < n; i++ {
			ordered = append(ordered, ring[i%len(ring)])
		}
		chunks = append(chunks, ordered)
		need -= len(ordered)
		if !gotFirst {
			break
		}
	}
	var out []Record
	for i := len(chunks) - 1; i >= 0; i-- {
		out = append(out, chunks[i]...)
	}
	return out, nil
}

func (t *tailer) run(ctx context.Context) error {
	switching := false // t.f was replaced at path; it is being read to its end
	for {
		rec, err := readRecord(t.lr)
		if err == nil {
			if err := t.read(rec); err != nil {
				return err
			}
			continue
		}
		atEnd := errors.Is(err, io.EOF)
		torn := errors.Is(err, errTornLine)
		if !atEnd && !torn {
			if ferr := t.endInitial(); ferr != nil {
				return ferr
			}
			return t.locate(err)
		}
		if switching {
			// The old file has been read to its end (a torn tail there
			// will never be completed): on to the next.
			if err := t.next(); err != nil {
				return err
			}
			switching = false
			continue
		}
		if torn {
			// A line being written: wait for the rest, unless the
			// file was cut back below it.
			again, err := t.checkPartial()
			if err != nil {
				return err
			}
			if again {
				continue
			}
		}
		rotated, err := replaced(t.f, t.path)
		if err != nil {
			return err
		}
		if rotated {
			// Read what reached the old file before it was replaced
			// (the writer finishes a write before it rotates), then
			// switch.
			switching = true
			continue
		}
		// At the end of the active file.
		if err := t.endInitial(); err != nil {
			return err
		}
		if !t.o.Follow {
			if atEnd {
				return nil
			}
			return t.locate(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(TailPollInterval):
		}
		if torn {
			// Before reading on after the partial line: is it still
			// there?
			if _, err := t.checkPartial(); err != nil {
				return err
			}
		}
	}
}

// checkPartial handles a partial final line being waited for: if the file
// no longer holds those bytes (cut back by crash recovery, perhaps then
// appended to), reading starts again at the line's start, and again is
// true.
func (t *tailer) checkPartial() (again bool, err error) {
	pos, err := t.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, fmt.Errorf("audit: %w", err)
	}
	partial := t.lr.buf
	lineStart := pos - int64(len(partial))
	size, err := fileSize(t.f)
	if err != nil {
		return false, err
	}
	if size >= pos {
		now := make([]byte, len(partial))
		if _, err := t.f.ReadAt(now, lineStart); err == nil && bytes.Equal(now, partial) {
			return false, nil // still there; wait for the rest
		}
	}
	if size < lineStart {
		return false, fmt.Errorf("audit: %s was truncated while being followed", t.f.Name())
	}
	line, abs := t.lr.line, t.absLines
	if err := t.reset(lineStart); err != nil {
		return false, err
	}
	// Keep counting lines from where the partial line was.
	t.lr.line, t.absLines = line, abs
	return true, nil
}

// locate returns err, a read error of the line t.lr is at, with the line
// counted from the start of the file: when t started reading past the
// start, the lines before are counted (only now, on the error path) and
// the same lines read again with the right numbers. An error in a rotated
// file names it.
func (t *tailer) locate(err error) error {
	if !t.absLines {
		if before, cerr := countNewlines(t.f, t.base); cerr == nil {
			lr := newLineReader(io.NewSectionReader(t.f, t.base, 1<<62))
			lr.line = before + 1
			for {
				_, rerr := readRecord(lr)
				if rerr != nil {
					if !errors.Is(rerr, io.EOF) { // else the file changed meanwhile
						err = rerr
					}
					break
				}
			}
		}
	}
	if t.f.Name() != t.path {
		return fmt.Errorf("%s: %w", t.f.Name(), err)
	}
	return err
}

// countNewlines counts the '\n' bytes in f before offset end.
func countNewlines(f io.ReaderAt, end int64) (int, error) {
	buf := make([]byte, 256<<10)
	n := 0
	for off := int64(0); off < end; {
		chunk := buf[:min(int64(len(buf)), end-off)]
		if _, err := f.ReadAt(chunk, off); err != nil {
			return 0, fmt.Errorf("audit: %w", err)
		}
		n += bytes.Count(chunk, []byte{'\n'})
		off += int64(len(chunk))
	}
	return n, nil
}

// tailChunk is how much lastLinesStart reads at a time.
const tailChunk = 64 << 10

// lastLinesStart returns the offset of the first of the last n complete
// lines of f, of size size, reading backwards from the end in chunks, and
// n; or 0 and how many complete lines there are, if fewer. With n == 0 it
// returns the end of the last complete line (bytes after it are a partial
// line).
func lastLinesStart(f io.ReaderAt, size int64, n int) (int64, int, error) {
	buf := make([]byte, tailChunk)
	seen := 0 // newlines seen; the first ends the last complete line
	for end := size; end > 0; {
		start := max(0, end-tailChunk)
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil {
			return 0, 0, fmt.Errorf("audit: %w", err)
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				continue
			}
			if seen == n {
				return start + int64(i) + 1, n, nil
			}
			seen++
		}
		end = start
	}
	return 0, seen, nil
}

// errSeqProbe is returned by seekSeq when a line's seq cannot be read from
// its first bytes.
var errSeqProbe = errors.New("audit: cannot read the seq of a line from its first bytes")

// seekSeq returns the offset of the first line of f (of size size) whose
// seq is at least want, or the end of the complete lines if none is. It
// relies on seq growing through the file, and reads about one line per
// step of a binary search over byte offsets: the smallest offset o such
// that the first line starting at or after o has seq >= want (or there is
// no such line) is the answer's line start or inside the line before it.
func seekSeq(f io.ReaderAt, size int64, want uint64) (int64, error) {
	buf := make([]byte, 4<<10)
	// probe reports whether the first line starting at or after o has seq
	// >= want or does not exist, and that line's start.
	probe := func(o int64) (bool, int64, error) {
		ls, ok, err := nextLineStart(f, size, o, buf)
		if err != nil || !ok {
			return true, size, err
		}
		seq, err := seqAt(f, ls, buf)
		if err != nil {
			return false, 0, err
		}
		return seq >= want, ls, nil
	}
	lo, hi := int64(0), size
	for lo < hi {
		mid := lo + (hi-lo)/2
		ok, _, err := probe(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	_, ls, err := probe(lo)
	if err != nil {
		return 0, err
	}
	if ls == size {
		end, _, err := lastLinesStart(f, size, 0)
		return end, err
	}
	return ls, nil
}

// nextLineStart returns the first line start at or after o (o itself if
// o is 0 or follows a '\n'); ok is false if the file ends first.
func nextLineStart(f io.ReaderAt, size, o int64, buf []byte) (int64, bool, error) {
	if o == 0 {
		return 0, size > 0, nil
	}
	for pos := o - 1; pos < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-pos)], pos)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			ls := pos + int64(i) + 1
			return ls, ls < size, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, false, fmt.Errorf("audit: %w", err)
		}
		if n == 0 {
			break
		}
		pos += int64(n)
		if pos-o > MaxLineLen {
			return 0, false, errSeqProbe
		}
	}
	return 0, false, nil
}

// seqAt reads the seq of the line starting at ls from its first bytes,
// {"time":"<RFC 3339>","seq":<digits>, as every audit line begins.
func seqAt(f io.ReaderAt, ls int64, buf []byte) (uint64, error) {
	b := buf[:min(len(buf), 128)]
	n, err := f.ReadAt(b, ls)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("audit: %w", err)
	}
	b = b[:n]
	const timeKey, seqKey = `{"time":"`, `","seq":`
	if !bytes.HasPrefix(b, []byte(timeKey)) {
		return 0, errSeqProbe
	}
	b = b[len(timeKey):]
	i := bytes.Index(b, []byte(seqKey))
	if i < 0 || bytes.IndexByte(b[:i], '"') >= 0 {
		return 0, errSeqProbe
	}
	b = b[i+len(seqKey):]
	j := 0
	for j < len(b) && '0' <= b[j] && b[j] <= '9' {
		j++
	}
	if j == 0 || j == len(b) || b[j] != ',' && b[j] != '}' {
		return 0, errSeqProbe
	}
	seq, err := strconv.ParseUint(string(b[:j]), 10, 64)
	if err != nil {
		return 0, errSeqProbe
	}
	return seq, nil
}

// filterIsZero reports whether f passes every record.
func filterIsZero(f Filter) bool {
	return f.User == "" && f.Node == "" && f.Cluster == "" && f.Decision == "" &&
		f.Session == "" && f.Event == "" && f.Since.IsZero() && f.Until.IsZero()
}
