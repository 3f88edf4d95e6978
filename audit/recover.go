package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// quarantineLayout is the UTC time in a quarantine file's name,
// <base>.torn-<quarantineLayout>-<n>.
const quarantineLayout = "20060102T150405Z"

// pendingSuffix marks a quarantine file whose EventRecovered record may not
// be written yet: <base>.torn-<time>-<n>.pending. Open finishes it.
const pendingSuffix = ".pending"

// activeState is what Open reads from the active file before repairing it.
type activeState struct {
	size  int64   // file size
	end   int64   // offset just after the last '\n' (0: no complete line)
	first *Record // first and last complete records; nil when end == 0
	last  *Record
	// firstErr is why the first line does not verify (first then holds
	// what its JSON says).
	firstErr error
}

// quarantined is a torn tail copied aside, not yet recorded and renamed.
type quarantined struct {
	pending, final string
	data           []byte
}

// recoverAtOpen brings the active file (opened and locked, fi) to a state
// the writer continues from: it undoes an interrupted rotation, finishes an
// interrupted recovery, moves a torn tail aside, starts the chain of a new
// or empty file, and gives a legacy file its log id. It sets l.w and l.id.
func (l *Log) recoverAtOpen(fi fs.FileInfo) error {
	path := l.path
	rf, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer rf.Close()
	rfi, err := rf.Stat()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if !os.SameFile(rfi, fi) {
		return fmt.Errorf("audit: %s was replaced while opening", path)
	}
	if err := undoRotation(path, fi, l.log); err != nil {
		return err
	}
	st, err := inspectActive(rf, path, rfi.Size(), l.opts.VerifyOnOpen)
	if err != nil {
		return err
	}
	var tail []byte
	if st.size > st.end {
		tail = make([]byte, st.size-st.end)
		if _, err := rf.ReadAt(tail, st.end); err != nil {
			return fmt.Errorf("audit: read the torn end of %s: %w", path, err)
		}
	}

	// A recovery interrupted by a crash left <quarantine>.pending.
	pend, err := pendingQuarantines(path)
	if err != nil {
		return err
	}
	var todo []quarantined
	for _, p := range pend {
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if len(tail) > 0 && bytes.HasPrefix(tail, data) {
			// The crash came before the truncation: these bytes are still
			// the log's torn tail, quarantined again below.
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
			continue
		}
		q := quarantined{pending: p, final: strings.TrimSuffix(p, pendingSuffix), data: data}
		if st.last != nil && st.last.Event == EventRecovered && st.last.Detail["quarantine"] == filepath.Base(q.final) {
			if err := q.place(l.log); err != nil { // recorded, not yet renamed
				return err
			}
			continue
		}
		todo = append(todo, q) // truncated, not yet recorded
	}
	if len(tail) > 0 {
		q, err := quarantine(path, tail, l.now())
		if err != nil {
			return err
		}
		if err := l.w.osf.Truncate(st.end); err != nil {
			return fmt.Errorf("audit: truncate the torn end of %s: %w", path, err)
		}
		if err := l.w.osf.Sync(); err != nil {
			return fmt.Errorf("audit: fsync %s: %w", path, err)
		}
		l.log.Warn("audit log had a torn final line (a crash mid-write); moved it to a quarantine file and continued the chain",
			zap.String("path", path), zap.Int("torn_bytes", len(tail)), zap.String("quarantine", q.final))
		todo = append(todo, q)
	}

	l.w.end = st.end
	l.w.seq, l.w.prev = 0, GenesisHash
	if st.last != nil {
		l.w.seq, l.w.prev, l.w.last = st.last.Seq, st.last.Hash, st.last.Time
	}
	legacy := false
	switch {
	case st.end == 0:
		if err := l.startChain(); err != nil {
			return err
		}
	case logIDOf(st.first) != "":
		l.id = logIDOf(st.first)
		if st.firstErr != nil {
			l.log.Warn("audit log's first record does not verify; run `beamgate audit verify`", zap.String("path", path), zap.Error(st.firstErr))
		}
	default:
		// Written before log ids existed: the id is in the log_start record
		// appended when this beamgate first opened it, if it did.
		id, err := findLogStart(rf, st.end)
		if err != nil {
			return err
		}
		l.id, legacy = id, id == ""
	}
	for _, q := range todo {
		sum := sha256.Sum256(q.data)
		rec := &Record{Event: EventRecovered, Decision: DecisionInfo, Detail: map[string]string{
			"torn_bytes":  strconv.Itoa(len(q.data)),
			"torn_sha256": hex.EncodeToString(sum[:]),
			"quarantine":  filepath.Base(q.final),
		}}
		if err := l.openWrite(rec); err != nil {
			return err
		}
		if err := q.place(l.log); err != nil {
			return err
		}
	}
	if legacy {
		l.id = newLogID()
		if err := l.openWrite(&Record{Event: EventLogStart, Decision: DecisionInfo, Detail: map[string]string{"log_id": l.id}}); err != nil {
			return err
		}
		l.log.Info("audit log had no log id (written by an older beamgate); appended a log_start record", zap.String("path", path), zap.String("log_id", l.id))
	}
	return nil
}

// openWrite writes a record during Open; on failure it cuts the file back
// and returns an error wrapping ErrLogFailed and ErrUnavailable.
func (l *Log) openWrite(r *Record) error {
	if err := l.writeRecord(r); err != nil {
		l.cutBack()
		return fmt.Errorf("%w: %w: opening: %w", ErrLogFailed, ErrUnavailable, err)
	}
	return nil
}

// startChain writes the first record of an empty active file: an
// EventRotate continuing the newest rotated file if there is one (the
// crash, or a hand rotation, came between the rename and the new file's
// first record), else an EventLogStart opening a new log.
func (l *Log) startChain() error {
	rot, err := rotatedFiles(l.path)
	if err != nil {
		return err
	}
	if len(rot) == 0 {
		l.id = newLogID()
		return l.openWrite(&Record{Event: EventLogStart, Decision: DecisionInfo, Detail: map[string]string{"log_id": l.id}})
	}
	newest := rot[len(rot)-1]
	first, last, err := fileEnds(newest)
	if err != nil {
		return fmt.Errorf("audit: %s is empty and the newest rotated file cannot be continued: %w; refusing to append (fail closed): run `beamgate audit verify`", l.path, err)
	}
	l.id = logIDOf(&first)
	if l.id == "" {
		l.id = newLogID()
	}
	l.w.seq, l.w.prev, l.w.last = last.Seq, last.Hash, last.Time
	rec := &Record{Event: EventRotate, Decision: DecisionInfo, Detail: map[string]string{
		"prev_file": filepath.Base(newest),
		"prev_seq":  strconv.FormatUint(last.Seq, 10),
		"prev_hash": last.Hash,
		"log_id":    l.id,
	}}
	if err := l.openWrite(rec); err != nil {
		return err
	}
	l.log.Info("audit log continued from the newest rotated file", zap.String("path", l.path), zap.String("prev_file", newest), zap.Uint64("seq", rec.Seq))
	return nil
}

// logIDOf returns the log id a file's first record carries (log_start or
// rotate), or "".
func logIDOf(r *Record) string {
	if r == nil || r.Event != EventLogStart && r.Event != EventRotate {
		return ""
	}
	return r.Detail["log_id"]
}

// findLogStart returns the log id of the first valid log_start record in
// the first end bytes of f, or "". It reads the whole file: only a file
// written before log ids existed, until it is rotated, needs it.
func findLogStart(f io.ReaderAt, end int64) (string, error) {
	lr := newLineReader(io.NewSectionReader(f, 0, end))
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("audit: looking for the log id: line %d: %w", lr.line, err)
		}
		if !bytes.Contains(line, []byte(`"event":"log_start"`)) {
			continue
		}
		if r, err := parseLine(line); err == nil && r.Event == EventLogStart && r.Detail["log_id"] != "" {
			return r.Detail["log_id"], nil
		}
	}
}

// undoRotation removes what a rotation interrupted before its final rename
// leaves: the new file under <path>.rotating (holding only the unplaced
// rotate record) and the active file's extra name under a rotated name.
func undoRotation(path string, active fs.FileInfo, log *zap.Logger) error {
	changed := false
	tmp := path + rotatingSuffix
	if err := os.Remove(tmp); err == nil {
		changed = true
		log.Warn("audit log: removed the new file of an interrupted rotation", zap.String("file", tmp))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audit: %w", err)
	}
	rot, err := rotatedFiles(path)
	if err != nil {
		return err
	}
	for _, f := range rot {
		fi, err := os.Stat(f)
		if err != nil || !os.SameFile(fi, active) {
			continue
		}
		if err := os.Remove(f); err != nil { // a second name of the active file
			return fmt.Errorf("audit: %w", err)
		}
		changed = true
		log.Warn("audit log: undid an interrupted rotation", zap.String("file", f))
	}
	if changed {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

// inspectActive reads the end (and first line) of the active file without
// changing it. It refuses (fail closed, naming `beamgate audit verify`) a
// last complete line or first line that is not a valid record, and an
// unterminated tail too long to be one torn record. With verifyAll it also
// verifies the chain of every complete line.
func inspectActive(rf *os.File, path string, size int64, verifyAll bool) (activeState, error) {
	st := activeState{size: size}
	refuse := func(line int, reason string) error {
		return fmt.Errorf("audit: %s line %d: %s; refusing to append (fail closed): run `beamgate audit verify %s` and repair the file", path, line, reason, path)
	}
	if size == 0 {
		return st, nil
	}
	end, err := lastLineEnd(rf, size)
	if err != nil {
		return st, err
	}
	if end < 0 {
		lines, cerr := countLines(rf)
		if cerr != nil {
			return st, cerr
		}
		return st, refuse(lines+1, fmt.Sprintf("the final %d or more bytes have no newline: too long to be a torn record", MaxLineLen))
	}
	st.end = end
	if end == 0 {
		return st, nil // only a torn line
	}
	last, err := readLastLine(rf, end)
	if err != nil {
		return st, err
	}
	rec, err := parseLine(last)
	if err != nil {
		lines, cerr := countLines(rf)
		if cerr != nil {
			return st, cerr
		}
		return st, refuse(lines, "last record: "+err.Error())
	}
	st.last = &rec
	lr := newLineReader(io.NewSectionReader(rf, 0, end))
	// Only the last line must verify here (VerifyOnOpen checks them all):
	// the first is read for its log id, and `beamgate audit verify` reports
	// an edit to it.
	var first Record
	firstLine, err := lr.next()
	if err == nil {
		first, err = parseLine(firstLine)
	}
	if err != nil {
		first = Record{}
		if json.Unmarshal(firstLine, &first) != nil {
			first = Record{} // no log id: treated as a legacy file
		}
		st.firstErr = err
	}
	st.first = &first
	if verifyAll {
		if err := verifyFileChain(io.NewSectionReader(rf, 0, end)); err != nil {
			var be *BreakError
			if errors.As(err, &be) {
				return st, refuse(be.Line, be.Reason)
			}
			return st, err
		}
		if first.Event == EventRotate {
			prev := filepath.Join(filepath.Dir(path), filepath.Base(first.Detail["prev_file"]))
			if _, last, err := fileEnds(prev); err == nil {
				if last.Seq+1 != first.Seq || last.Hash != first.Prev {
					return st, refuse(1, fmt.Sprintf("rotate record continues seq %d hash %.12s…, but %s ends at seq %d hash %.12s…", first.Seq-1, first.Prev, prev, last.Seq, last.Hash))
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				return st, fmt.Errorf("audit: %s: %w", prev, err)
			}
		}
	}
	return st, nil
}

// lastLineEnd returns the offset just after the last '\n' of f (size > 0),
// 0 if f has none, or -1 if the unterminated tail is MaxLineLen bytes or
// more (no torn record is that long).
func lastLineEnd(f io.ReaderAt, size int64) (int64, error) {
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return 0, fmt.Errorf("audit: read last byte: %w", err)
	}
	if b[0] == '\n' {
		return size, nil
	}
	n := min(size, MaxLineLen)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil {
		return 0, fmt.Errorf("audit: read the end of the file: %w", err)
	}
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		return size - n + int64(i) + 1, nil
	}
	if n == size && size < MaxLineLen {
		return 0, nil
	}
	return -1, nil
}

// readLastLine returns the last line (without '\n') of f, whose size is
// size > 0 and whose byte at size-1 is '\n', reading backwards at most
// MaxLineLen bytes.
func readLastLine(f io.ReaderAt, size int64) ([]byte, error) {
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return nil, fmt.Errorf("audit: read last byte: %w", err)
	}
	if b[0] != '\n' {
		return nil, errTornLine
	}
	end := size - 1 // offset of the final '\n'
	start := max(end-MaxLineLen, 0)
	buf := make([]byte, end-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return nil, fmt.Errorf("audit: read last line: %w", err)
	}
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		return buf[i+1:], nil
	}
	if start > 0 {
		return nil, fmt.Errorf("audit: last line is longer than %d bytes", MaxLineLen)
	}
	return buf, nil
}

// countLines counts the '\n' in f from the start.
func countLines(f io.ReadSeeker) (int, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	buf := make([]byte, 64<<10)
	n := 0
	for {
		m, err := f.Read(buf)
		n += bytes.Count(buf[:m], []byte{'\n'})
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("audit: %w", err)
		}
	}
}

// fileEnds returns the first and last records of a complete audit file (a
// rotated one): both lines must parse, the file must end with '\n'.
func fileEnds(path string) (first, last Record, err error) {
	f, err := os.Open(path)
	if err != nil {
		return first, last, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return first, last, err
	}
	if fi.Size() == 0 {
		return first, last, fmt.Errorf("%s is empty", path)
	}
	line, err := readLastLine(f, fi.Size())
	if err != nil {
		return first, last, fmt.Errorf("%s: last line: %w", path, err)
	}
	if last, err = parseLine(line); err != nil {
		return first, last, fmt.Errorf("%s: last record: %w", path, err)
	}
	lr := newLineReader(f)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return first, last, err
	}
	line, err = lr.next()
	if err != nil {
		return first, last, fmt.Errorf("%s: first line: %w", path, err)
	}
	if first, err = parseLine(line); err != nil {
		return first, last, fmt.Errorf("%s: first record: %w", path, err)
	}
	return first, last, nil
}

// verifyFileChain verifies every line of one audit file and the chain
// within it. The chain starts at seq 1 from the genesis hash, or, if the
// first record is a rotate record, where that record says (its prev_seq
// and prev_hash must match its own Seq and Prev). Breaks are *BreakError.
func verifyFileChain(r io.Reader) error {
	lr := newLineReader(r)
	var seq uint64
	prev := GenesisHash
	for n := 0; ; n++ {
		line, err := lr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			var tooLong *LineTooLongError
			if errors.Is(err, errTornLine) || errors.As(err, &tooLong) {
				return &BreakError{Line: lr.line, Seq: seq + 1, Reason: err.Error()}
			}
			return fmt.Errorf("audit: read line %d: %w", lr.line, err)
		}
		rec, err := parseLine(line)
		if err != nil {
			return &BreakError{Line: lr.line, Seq: seq + 1, Reason: err.Error()}
		}
		if n == 0 && rec.Event == EventRotate {
			if rec.Seq == 0 || rec.Detail["prev_seq"] != strconv.FormatUint(rec.Seq-1, 10) || rec.Detail["prev_hash"] != rec.Prev {
				return &BreakError{Line: lr.line, Seq: rec.Seq, Reason: "rotate record's prev_seq and prev_hash do not match its own seq and prev"}
			}
			seq, prev = rec.Seq-1, rec.Prev
		}
		if rec.Seq != seq+1 {
			return &BreakError{Line: lr.line, Seq: seq + 1, Reason: fmt.Sprintf("seq is %d (record missing, duplicated or reordered)", rec.Seq)}
		}
		if rec.Prev != prev {
			return &BreakError{Line: lr.line, Seq: seq + 1, Reason: fmt.Sprintf("prev %.12s… does not match the previous record's hash %.12s…", rec.Prev, prev)}
		}
		seq, prev = rec.Seq, rec.Hash
	}
}

// quarantine copies a torn tail to <base>.torn-<UTC time>-<n>.pending beside
// the log (mode 0600, fsynced, directory fsynced). The caller truncates
// the log, records the quarantine, then places it under its final name.
func quarantine(path string, data []byte, now time.Time) (quarantined, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	stamp := now.UTC().Format(quarantineLayout)
	for n := 1; n < 10000; n++ {
		final := filepath.Join(dir, fmt.Sprintf("%s.torn-%s-%d", base, stamp, n))
		if _, err := os.Lstat(final); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return quarantined{}, fmt.Errorf("audit: %w", err)
		}
		p := final + pendingSuffix
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return quarantined{}, fmt.Errorf("audit: quarantine the torn end of %s: %w", path, err)
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(p)
			return quarantined{}, fmt.Errorf("audit: quarantine the torn end of %s: %w", path, err)
		}
		if err := syncDir(dir); err != nil {
			return quarantined{}, err
		}
		return quarantined{pending: p, final: final, data: data}, nil
	}
	return quarantined{}, fmt.Errorf("audit: no free quarantine name for %s", path)
}

// place gives a recorded quarantine file its final name. It never replaces
// an existing file: if the final name is taken by other bytes, the
// .pending file stays (and is logged).
func (q quarantined) place(log *zap.Logger) error {
	err := os.Link(q.pending, q.final)
	if errors.Is(err, fs.ErrExist) {
		if got, rerr := os.ReadFile(q.final); rerr != nil || !bytes.Equal(got, q.data) {
			log.Error("audit quarantine: final name taken by another file; keeping the .pending file", zap.String("file", q.pending))
			return nil
		}
		err = nil // linked before a crash
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := os.Remove(q.pending); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return syncDir(filepath.Dir(q.final))
}

// pendingQuarantines lists the .pending quarantine files of path.
func pendingQuarantines(path string) ([]string, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, base+".torn-") && strings.HasSuffix(n, pendingSuffix) && e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, n))
		}
	}
	slices.Sort(out)
	return out, nil
}
