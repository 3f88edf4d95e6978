package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrLogFailed is wrapped by every Append error after a write or fsync
	// failed. The log does not recover; callers end their sessions.
	ErrLogFailed = errors.New("audit: log failed")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("audit: log closed")
)

// maxBatchBytes bounds one group-commit write; a larger backlog is written
// as several batches, each fsynced before its waiters are released.
const maxBatchBytes = 4 << 20

// Options configure Open.
type Options struct {
	// Now returns the time stamped on records whose Time is zero; nil
	// means time.Now.
	Now func() time.Time
	// VerifyOnOpen makes Open verify the whole existing chain instead of
	// only its last record.
	VerifyOnOpen bool
}

// logFile is the subset of *os.File the writer uses. It exists so tests can
// inject write and fsync failures.
type logFile interface {
	io.Writer
	Sync() error
	Close() error
}

// Log is an append-only, hash-chained audit log file. All methods are safe
// for concurrent use.
//
// One writer goroutine (run) owns file, seq and prev. Appenders hand it
// records through queue; it batches everything pending into one write and
// one fsync (group commit), then releases the waiters.
type Log struct {
	path string
	now  func() time.Time

	file logFile // owned by run; closed by Close after run exits

	mu      sync.Mutex
	cond    *sync.Cond // signalled when queue grows or closing is set
	queue   []*pending
	closing bool
	failErr error // set once, wraps ErrLogFailed
	headSeq uint64
	headH   string

	failed  chan struct{} // closed when failErr is set
	stopped chan struct{} // closed when run returns

	batches atomic.Int64 // number of fsyncs, for the benchmark
}

// pending is one Append waiting for the writer.
type pending struct {
	rec   Record // owned by the writer once queued
	state atomic.Int32
	done  chan error // buffered; receives exactly one value unless abandoned
}

const (
	pendingQueued    int32 = iota
	pendingTaken           // the writer has it; it may reach the file
	pendingAbandoned       // the appender gave up first; never written
)

// Open opens (creating if needed) the audit log at path for appending.
//
// A new file is created with mode 0600. An existing file must be a regular
// file not readable or writable by group or others; its last line must be
// a complete, self-consistent record, whose Seq and Hash the chain
// continues from. A torn final line (crash mid-write) makes Open fail with
// an error naming the line: Open never repairs a log, run "beamgate audit
// verify" and fix it by hand. The file is flock'ed exclusively for the
// life of the Log.
func Open(path string, opts Options) (*Log, error) {
	return openLog(path, opts, nil)
}

// openLog is Open with a hook that wraps the file (tests inject failures).
func openLog(path string, opts Options, wrap func(logFile) logFile) (*Log, error) {
	f, created, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("audit: %s has mode %#o, readable or writable by group or others; run chmod 600 %s", path, perm, path)
	}
	if err := lockFile(f); err != nil {
		return nil, err
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	seq, head, err := readHead(path, fi, opts.VerifyOnOpen)
	if err != nil {
		return nil, err
	}
	l := &Log{
		path:    path,
		now:     opts.Now,
		file:    f,
		headSeq: seq,
		headH:   head,
		failed:  make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if wrap != nil {
		l.file = wrap(f)
	}
	l.cond = sync.NewCond(&l.mu)
	ok = true
	go l.run(seq, head)
	return l, nil
}

// openAppend opens path O_WRONLY|O_APPEND, creating it with mode 0600 if it
// does not exist, and reports whether it created it.
func openAppend(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("audit: %w", err)
	}
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, false, fmt.Errorf("audit: %w", err)
	}
	return f, false, nil
}

// syncDir fsyncs a directory so a newly created file's entry is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: sync directory %s: %w", dir, err)
	}
	return nil
}

// readHead returns the Seq and Hash of the last record of the file at path
// (0 and GenesisHash for an empty file). want is the file already opened
// for appending; the file read must be the same one.
func readHead(path string, want fs.FileInfo, verifyAll bool) (uint64, string, error) {
	rf, err := os.Open(path)
	if err != nil {
		return 0, "", fmt.Errorf("audit: %w", err)
	}
	defer rf.Close()
	fi, err := rf.Stat()
	if err != nil {
		return 0, "", fmt.Errorf("audit: %w", err)
	}
	if !os.SameFile(fi, want) {
		return 0, "", fmt.Errorf("audit: %s was replaced while opening", path)
	}
	refuse := func(line int, reason string) error {
		return fmt.Errorf("audit: %s line %d: %s; refusing to append (fail closed): run `beamgate audit verify %s` and repair the file", path, line, reason, path)
	}
	if verifyAll {
		if _, err := Verify(rf); err != nil {
			var be *BreakError
			if errors.As(err, &be) {
				return 0, "", refuse(be.Line, be.Reason)
			}
			return 0, "", err
		}
		if _, err := rf.Seek(0, io.SeekStart); err != nil {
			return 0, "", fmt.Errorf("audit: %w", err)
		}
	}
	size := fi.Size()
	if size == 0 {
		return 0, GenesisHash, nil
	}
	last, err := readLastLine(rf, size)
	if err != nil {
		if errors.Is(err, errTornLine) {
			lines, cerr := countLines(rf)
			if cerr != nil {
				return 0, "", cerr
			}
			return 0, "", refuse(lines+1, "final line is incomplete (torn write after a crash?)")
		}
		return 0, "", err
	}
	rec, err := parseLine(last)
	if err != nil {
		lines, cerr := countLines(rf)
		if cerr != nil {
			return 0, "", cerr
		}
		return 0, "", refuse(lines, "last record: "+err.Error())
	}
	return rec.Seq, rec.Hash, nil
}

// readLastLine returns the last line (without '\n') of f, whose size is
// size > 0, reading backwards at most MaxLineLen bytes. It returns
// errTornLine if the file does not end with '\n'.
func readLastLine(f io.ReaderAt, size int64) ([]byte, error) {
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return nil, fmt.Errorf("audit: read last byte: %w", err)
	}
	if b[0] != '\n' {
		return nil, errTornLine
	}
	end := size - 1 // offset of the final '\n'
	start := end - MaxLineLen
	if start < 0 {
		start = 0
	}
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

// Append writes r to the log and returns once it is on disk (written and
// fsynced). Only then may the caller act on the decision r records (audit
// before forward). It sets r.Seq, r.Prev, r.Hash and (if zero) r.Time.
//
// Errors: ErrLogFailed (wrapped with the cause) once any write or fsync has
// failed, for this and every later call; ErrClosed after Close;
// ErrRecordTooLarge or ErrTimeOutOfRange for this record only (the log
// stays usable). If ctx ends first, Append returns
// its error; the record was not written if the writer had not yet picked it
// up, and may have been written otherwise. Either way the caller must not
// forward.
func (l *Log) Append(ctx context.Context, r *Record) error {
	if r == nil {
		return errors.New("audit: nil record")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := &pending{rec: *r, done: make(chan error, 1)}
	p.rec.Detail = maps.Clone(r.Detail) // the caller may reuse its map once we return
	l.mu.Lock()
	switch {
	case l.failErr != nil:
		err := l.failErr
		l.mu.Unlock()
		return err
	case l.closing:
		l.mu.Unlock()
		return ErrClosed
	}
	l.queue = append(l.queue, p)
	l.cond.Signal()
	l.mu.Unlock()

	select {
	case err := <-p.done:
		if err == nil {
			r.Time, r.Seq, r.Prev, r.Hash = p.rec.Time, p.rec.Seq, p.rec.Prev, p.rec.Hash
		}
		return err
	case <-ctx.Done():
		if p.state.CompareAndSwap(pendingQueued, pendingAbandoned) {
			return fmt.Errorf("audit: append abandoned before write: %w", context.Cause(ctx))
		}
		return fmt.Errorf("audit: append abandoned during write (record may be on disk): %w", context.Cause(ctx))
	}
}

// Err returns the error that failed the log (wrapping ErrLogFailed), or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failErr
}

// Failed returns a channel closed when the log fails. Sessions select on it
// to end themselves (fail closed).
func (l *Log) Failed() <-chan struct{} { return l.failed }

// Head returns the Seq and Hash of the last record on disk (0 and
// GenesisHash for an empty log). Publishing it elsewhere anchors the chain.
func (l *Log) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.headSeq, l.headH
}

// Path returns the file the log appends to.
func (l *Log) Path() string { return l.path }

// Close writes every pending record, stops the writer and closes the file.
// Appends after Close return ErrClosed. It returns the log's failure, if
// any, or the close error. Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	already := l.closing
	l.closing = true
	l.cond.Signal()
	l.mu.Unlock()
	<-l.stopped
	var cerr error
	if !already {
		cerr = l.file.Close()
	}
	if err := l.Err(); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("audit: close: %w", cerr)
	}
	return nil
}

// run is the writer goroutine: it takes every pending record, writes them
// in batches with one fsync each, and releases the waiters.
func (l *Log) run(seq uint64, prev string) {
	defer close(l.stopped)
	var buf []byte
	var batch []*pending
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closing {
			l.cond.Wait()
		}
		queue := l.queue
		l.queue = nil
		l.mu.Unlock()
		if len(queue) == 0 { // closing and drained
			return
		}
		buf, batch = buf[:0], batch[:0]
		for i, p := range queue {
			if !p.state.CompareAndSwap(pendingQueued, pendingTaken) {
				continue // abandoned by its appender
			}
			rec := &p.rec
			rec.Seq, rec.Prev = seq+1, prev
			if rec.Time.IsZero() {
				rec.Time = l.now()
			}
			rec.Time = rec.Time.UTC()
			var hash string
			var err error
			buf, hash, err = appendLine(buf, rec)
			if err != nil {
				p.done <- err // seq not consumed; the log stays usable
				continue
			}
			rec.Hash = hash
			seq, prev = seq+1, hash
			batch = append(batch, p)
			if len(buf) >= maxBatchBytes {
				if err := l.commit(buf, batch, seq, prev); err != nil {
					l.fail(err, queue[i+1:])
					return
				}
				buf, batch = buf[:0], batch[:0]
			}
		}
		if len(batch) > 0 {
			if err := l.commit(buf, batch, seq, prev); err != nil {
				l.fail(err, nil)
				return
			}
		}
	}
}

// commit writes buf, fsyncs, publishes the new head and releases batch. On
// error it fails batch's waiters and returns the wrapped error.
func (l *Log) commit(buf []byte, batch []*pending, seq uint64, head string) error {
	n, err := l.file.Write(buf)
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		err = fmt.Errorf("%w: write %s: %w", ErrLogFailed, l.path, err)
	} else if serr := l.file.Sync(); serr != nil {
		err = fmt.Errorf("%w: fsync %s: %w", ErrLogFailed, l.path, serr)
	}
	l.batches.Add(1)
	if err != nil {
		for _, p := range batch {
			p.done <- err
		}
		return err
	}
	l.mu.Lock()
	l.headSeq, l.headH = seq, head
	l.mu.Unlock()
	for _, p := range batch {
		p.done <- nil
	}
	return nil
}

// fail marks the log failed for good and fails every record not yet
// written: rest of the current queue and anything queued meanwhile.
func (l *Log) fail(err error, rest []*pending) {
	l.mu.Lock()
	l.failErr = err
	close(l.failed)
	rest = append(rest, l.queue...)
	l.queue = nil
	l.mu.Unlock()
	for _, p := range rest {
		if p.state.CompareAndSwap(pendingQueued, pendingTaken) {
			p.done <- err
		}
	}
}
