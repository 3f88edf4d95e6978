package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

var (
	// ErrLogFailed is wrapped by every Append error while the log is in an
	// outage: a write or fsync failed, the writer cut the file back to its
	// last complete record, and it refuses appends until a probe write
	// succeeds (see [Log.Stats]). Callers end their sessions.
	ErrLogFailed = errors.New("audit: log failed")
	// ErrUnavailable is wrapped next to ErrLogFailed during an outage. Its
	// text is the reason to show an engineer whose action was refused.
	ErrUnavailable = errors.New("the audit log cannot be written (disk full?)")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("audit: log closed")
)

// maxBatchBytes bounds one group-commit write; a larger backlog is written
// as several batches, each fsynced before its waiters are released.
const maxBatchBytes = 4 << 20

// DefaultProbeInterval is the first wait of an outage before the writer
// tries to write again; it doubles after each failed probe, up to ten
// times the interval.
const DefaultProbeInterval = time.Second

// Options configure Open.
type Options struct {
	// Now returns the time stamped on records whose Time is zero, and the
	// clock of rotation and retention; nil means time.Now.
	Now func() time.Time
	// VerifyOnOpen makes Open verify the whole chain of the active file
	// (and its link to the newest rotated file) instead of only its first
	// and last records.
	VerifyOnOpen bool

	// ProbeInterval is how long an outage waits before its first probe
	// write (DefaultProbeInterval when zero). Each failed probe doubles the
	// wait, up to 10×ProbeInterval.
	ProbeInterval time.Duration

	// RotateSize rotates the active file once it holds at least this many
	// bytes (0: no size rotation).
	RotateSize int64
	// RotateDaily rotates at the first write after UTC midnight.
	RotateDaily bool
	// Keep is how many rotated files retention keeps (0: all).
	Keep int
	// KeepAge deletes rotated files rotated longer ago than this (0: no age
	// limit).
	KeepAge time.Duration
	// OnRotate, if set, is called after each completed rotation (and its
	// retention) with the Seq and Hash of the new file's rotate record. It
	// runs on the writer goroutine, so it must return quickly and must not
	// call Append, Rotate or Close (hand the work to another goroutine, as
	// Checkpointer.Kick does).
	OnRotate func(seq uint64, hash string)

	// Logger receives the operator's log lines: outages and recoveries,
	// rotations, retention, repairs made at Open. nil logs nothing.
	Logger *zap.Logger
}

// logFile is the subset of *os.File the writer uses. It exists so tests can
// inject write and fsync failures.
type logFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Stats are the writer's counters, for metrics and health checks.
type Stats struct {
	// OutageSince is when the current outage started; zero while the log
	// accepts appends.
	OutageSince time.Time
	// OutageErr is the failure that started the current outage (nil when
	// none).
	OutageErr error
	// Refused counts the appends refused in the current outage, or in the
	// last one once it is over.
	Refused uint64
	// RefusedTotal counts every append refused by an outage since Open.
	RefusedTotal uint64
	// Failures counts failed writes and fsyncs since Open, failed probes
	// included.
	Failures uint64
	// Outages counts the outages started since Open.
	Outages uint64
	// Rotations counts the rotations made since Open.
	Rotations uint64
}

// Log is an append-only, hash-chained audit log: an active file and the
// files rotated out of it. All methods are safe for concurrent use.
//
// One writer goroutine (run) owns the file and the chain head (w). Appenders
// hand it records through queue; it batches everything pending into one
// write and one fsync (group commit), then releases the waiters. Rotation,
// retention and outage probes also run on the writer goroutine, so no
// append interleaves with them.
type Log struct {
	path string
	id   string
	opts Options
	now  func() time.Time
	log  *zap.Logger
	wrap func(logFile) logFile

	w writer // owned by run; by openLog before it starts, Close after it ends

	kick chan struct{} // wakes run: cap 1, sends never block

	mu      sync.Mutex
	queue   []*pending
	rotReqs []chan error // Rotate calls waiting for the writer
	closing bool
	out     *outage       // non-nil during an outage
	failed  chan struct{} // closed when the current outage starts
	headSeq uint64
	headH   string
	stats   Stats

	stopped chan struct{} // closed when run returns

	batches atomic.Int64 // number of fsyncs, for the benchmark
}

// writer is the state of the active file, owned by the writer goroutine.
type writer struct {
	file logFile
	osf  *os.File // the file under file, for Stat and locking
	end  int64    // offset just after the last complete record
	seq  uint64   // the chain head: last record on disk
	prev string
	last time.Time // Time of the last record written, for daily rotation

	probeWait time.Duration // during an outage: the wait before the next probe
	probeAt   time.Time     // by the real clock
	rotRetry  time.Time     // an automatic rotation failed: not again before this (real clock)
}

// outage is the state of the log while it refuses appends.
type outage struct {
	since   time.Time
	cause   error // the failure that started it
	err     error // what Append returns: ErrLogFailed, ErrUnavailable, cause
	refused uint64
	probing bool // a probe is being written; appends wait for its outcome
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

// Open opens (creating if needed) the audit log whose active file is path,
// for appending. Rotated files of the set lie beside it (see [Segments]).
//
// A new file is created with mode 0600. An existing file must be a regular
// file not readable or writable by group or others. The chain continues
// from the last complete record of the active file, which must be
// self-consistent (else Open refuses, naming the line and "beamgate audit
// verify"). Open repairs what a crash can leave, unattended and without
// discarding a byte:
//
//   - a torn final line (no trailing newline) is moved to a quarantine
//     file beside the log, <base>.torn-<UTC time>-<n>, and an
//     EventRecovered record names it (length and SHA-256 of the bytes);
//   - a missing or empty active file beside rotated files (a crash or a
//     hand rotation between the rename and the new file's first record)
//     is started with an EventRotate record continuing the newest rotated
//     file;
//   - the leftovers of an interrupted rotation or recovery are completed or
//     undone.
//
// A new log (no file at all) starts with an EventLogStart record carrying a
// new log id; an active file that has no log id yet (written before log
// ids existed) gets one appended. The active file is flock'ed exclusively
// for the life of the Log.
func Open(path string, opts Options) (*Log, error) {
	return openLog(path, opts, nil)
}

// openLog is Open with a hook that wraps every file the log writes (tests
// inject failures).
func openLog(path string, opts Options, wrap func(logFile) logFile) (*Log, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if wrap == nil {
		wrap = func(f logFile) logFile { return f }
	}
	l := &Log{
		path:    path,
		opts:    opts,
		now:     opts.Now,
		log:     opts.Logger,
		wrap:    wrap,
		kick:    make(chan struct{}, 1),
		failed:  make(chan struct{}),
		stopped: make(chan struct{}),
	}
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
	fi, err := checkActiveFile(f, path)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		return nil, err
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	l.w.osf, l.w.file = f, wrap(f)
	if err := l.recoverAtOpen(fi); err != nil {
		return nil, err
	}
	l.headSeq, l.headH = l.w.seq, l.w.prev
	ok = true
	go l.run()
	return l, nil
}

// checkActiveFile checks the opened active file: a regular file, mode
// without group or other bits.
func checkActiveFile(f *os.File, path string) (fs.FileInfo, error) {
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
	return fi, nil
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

// newLogID returns 16 random bytes in hex.
func newLogID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Append writes r to the log and returns once it is on disk (written and
// fsynced). Only then may the caller act on the decision r records (audit
// before forward). It sets r.Seq, r.Prev, r.Hash and (if zero) r.Time.
//
// Errors: during an outage (a write or fsync failed and no probe has
// succeeded since), an error wrapping ErrLogFailed, ErrUnavailable and the
// cause, for the record being written when it failed, every record queued
// behind it and every call until the log resumes by itself; ErrClosed
// after Close; ErrRecordTooLarge or ErrTimeOutOfRange for this record only
// (the log stays usable). A record that failed is not in the file (the
// writer cut it back) and its Seq is used by the next record. If ctx ends
// first, Append returns its error; the record was not written if the
// writer had not yet picked it up, and may have been written otherwise.
// Either way the caller must not forward.
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
	case l.out != nil && !l.out.probing:
		l.out.refused++
		l.stats.RefusedTotal++
		err := l.out.err
		l.mu.Unlock()
		return err
	case l.closing:
		l.mu.Unlock()
		return ErrClosed
	}
	l.queue = append(l.queue, p)
	l.mu.Unlock()
	l.signal()

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

// signal wakes the writer.
func (l *Log) signal() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Err returns, during an outage, the error Append returns (wrapping
// ErrLogFailed, ErrUnavailable and the write or fsync failure); nil while
// the log accepts appends.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.out == nil {
		return nil
	}
	return l.out.err
}

// Failed returns a channel that is closed when the next outage starts (or
// already closed during one). Sessions select on it to end themselves
// (fail closed). Once the log resumes, Failed returns a new channel: a
// caller that wants to hear of later outages must call Failed again after
// the channel fired, e.g. on every turn of its loop, as the relay's
// watchdog does.
func (l *Log) Failed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// Stats returns the writer's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	if l.out != nil {
		s.OutageSince, s.OutageErr, s.Refused = l.out.since, l.out.cause, l.out.refused
	}
	return s
}

// Head returns the Seq and Hash of the last record on disk. Publishing it
// elsewhere anchors the chain.
func (l *Log) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.headSeq, l.headH
}

// ID returns the log id: 16 random bytes in hex, chosen when the log
// started (its EventLogStart record) and repeated in every EventRotate
// record.
func (l *Log) ID() string { return l.id }

// Path returns the active file, the one the log appends to.
func (l *Log) Path() string { return l.path }

// Rotate rotates the active file now (the gateway calls it on SIGHUP): see
// the package doc's Rotation section. It returns once the new active file
// holds its rotate record and retention has run, or with the outage error
// during an outage (nothing is rotated), ErrClosed after Close, or why the
// rotation failed (the log then keeps appending to the same file).
func (l *Log) Rotate() error {
	ch := make(chan error, 1)
	l.mu.Lock()
	switch {
	case l.out != nil:
		err := l.out.err
		l.mu.Unlock()
		return err
	case l.closing:
		l.mu.Unlock()
		return ErrClosed
	}
	l.rotReqs = append(l.rotReqs, ch)
	l.mu.Unlock()
	l.signal()
	return <-ch
}

// Close writes every pending record, stops the writer and closes the file.
// Appends after Close return ErrClosed. It returns the outage error if the
// log is in an outage, or the close error. Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	already := l.closing
	l.closing = true
	l.mu.Unlock()
	l.signal()
	<-l.stopped
	var cerr error
	if !already {
		cerr = l.w.file.Close()
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
// in batches with one fsync each, and releases the waiters; it rotates, and
// during an outage it probes.
func (l *Log) run() {
	defer close(l.stopped)
	for {
		l.mu.Lock()
		if l.out != nil {
			closing := l.closing
			l.mu.Unlock()
			if closing {
				return
			}
			if d := time.Until(l.w.probeAt); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-l.kick:
					t.Stop()
					continue // Close, or a stale kick: look again
				case <-t.C:
				}
			}
			l.probe()
			continue
		}
		queue, rots, closing := l.queue, l.rotReqs, l.closing
		l.queue, l.rotReqs = nil, nil
		l.mu.Unlock()
		if len(queue) == 0 && len(rots) == 0 {
			if closing {
				return
			}
			<-l.kick
			continue
		}
		l.writeQueue(queue)
		for _, ch := range rots {
			ch <- l.rotateNow()
		}
	}
}

// writeQueue writes queue in batches. A failure starts an outage and fails
// the rest.
func (l *Log) writeQueue(queue []*pending) {
	for len(queue) > 0 {
		l.autoRotate(true)
		if l.down() {
			l.refuseQueued(queue)
			return
		}
		buf, batch, rest, seq, prev, last := l.build(queue)
		queue = rest
		if len(batch) == 0 {
			continue
		}
		if err := l.commit(buf, batch, seq, prev, last); err != nil {
			l.enterOutage(err, batch, queue)
			return
		}
	}
	l.autoRotate(false)
}

// build takes records from queue until the batch reaches maxBatchBytes and
// encodes them, chained from the head. It returns the batch, the records
// not taken, and the head the batch would make.
func (l *Log) build(queue []*pending) (buf []byte, batch, rest []*pending, seq uint64, prev string, last time.Time) {
	seq, prev, last = l.w.seq, l.w.prev, l.w.last
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
		seq, prev, last = seq+1, hash, rec.Time
		batch = append(batch, p)
		if len(buf) >= maxBatchBytes {
			return buf, batch, queue[i+1:], seq, prev, last
		}
	}
	return buf, batch, nil, seq, prev, last
}

// commit writes buf, fsyncs, publishes the new head and releases batch.
// On error the waiters are left to the caller (enterOutage).
func (l *Log) commit(buf []byte, batch []*pending, seq uint64, head string, last time.Time) error {
	err := l.writeSync(buf)
	l.batches.Add(1)
	if err != nil {
		return err
	}
	l.advance(int64(len(buf)), seq, head, last)
	for _, p := range batch {
		p.done <- nil
	}
	return nil
}

// writeSync writes buf to the active file and fsyncs it.
func (l *Log) writeSync(buf []byte) error {
	n, err := l.w.file.Write(buf)
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return l.opErr("write", err)
	}
	if err := l.w.file.Sync(); err != nil {
		return l.opErr("fsync", err)
	}
	return nil
}

// opErr names the operation and the file in err, unless it already does
// (an *fs.PathError from the os package).
func (l *Log) opErr(op string, err error) error {
	if _, ok := errors.AsType[*fs.PathError](err); ok {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, l.path, err)
}

// advance records that n more bytes ending with record seq (hash head,
// time last) are on disk, and publishes the head.
func (l *Log) advance(n int64, seq uint64, head string, last time.Time) {
	l.w.end += n
	l.w.seq, l.w.prev = seq, head
	if last.After(l.w.last) {
		l.w.last = last
	}
	l.mu.Lock()
	l.headSeq, l.headH = seq, head
	l.mu.Unlock()
}

// writeRecord chains r to the head (it sets Seq, Prev, Hash, and Time if
// zero), writes and fsyncs it. On failure nothing is advanced; the caller
// cuts the file back.
func (l *Log) writeRecord(r *Record) error {
	r.Seq, r.Prev = l.w.seq+1, l.w.prev
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	r.Time = r.Time.UTC()
	line, hash, err := appendLine(nil, r)
	if err != nil {
		return err
	}
	r.Hash = hash
	if err := l.writeSync(line); err != nil {
		return err
	}
	l.advance(int64(len(line)), r.Seq, hash, r.Time)
	return nil
}

// cutBack truncates the active file to the end of its last complete record
// and fsyncs it. The file is O_APPEND, so the next write lands there.
func (l *Log) cutBack() error {
	if err := l.w.file.Truncate(l.w.end); err != nil {
		return fmt.Errorf("cutting back to %d bytes: %w", l.w.end, l.opErr("truncate", err))
	}
	if err := l.w.file.Sync(); err != nil {
		return fmt.Errorf("cutting back to %d bytes: %w", l.w.end, l.opErr("fsync", err))
	}
	return nil
}

// down reports whether the log is in an outage.
func (l *Log) down() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out != nil
}

// enterOutage handles a failed write or fsync: it cuts the file back,
// starts an outage (closing the Failed channel), and fails batch, rest and
// everything queued meanwhile.
func (l *Log) enterOutage(cause error, batch, rest []*pending) {
	cutErr := l.cutBack()
	now := l.now()
	o := &outage{since: now, cause: cause}
	o.err = fmt.Errorf("%w: %w: %w", ErrLogFailed, ErrUnavailable, cause)
	l.mu.Lock()
	l.out = o
	close(l.failed)
	l.stats.Outages++
	l.stats.Failures++
	rest = append(rest, l.queue...)
	l.queue = nil
	rots := l.rotReqs
	l.rotReqs = nil
	var fail []*pending
	for _, p := range rest {
		if p.state.CompareAndSwap(pendingQueued, pendingTaken) {
			fail = append(fail, p)
		}
	}
	fail = append(fail, batch...)
	o.refused += uint64(len(fail))
	l.stats.RefusedTotal += uint64(len(fail))
	l.mu.Unlock()
	for _, p := range fail {
		p.done <- o.err
	}
	for _, ch := range rots {
		ch <- o.err
	}
	l.w.probeWait = l.opts.ProbeInterval
	l.w.probeAt = time.Now().Add(l.w.probeWait) // the real clock, not Options.Now
	fields := []zap.Field{zap.String("path", l.path), zap.Error(cause), zap.Int("refused", len(fail)), zap.Duration("probe_in", l.w.probeWait)}
	if cutErr != nil {
		fields = append(fields, zap.NamedError("cut_back", cutErr))
	}
	l.log.Error("audit log write failed: refusing every audited action until a probe write succeeds", fields...)
}

// refuseQueued fails queued records with the outage error.
func (l *Log) refuseQueued(queue []*pending) {
	l.mu.Lock()
	o := l.out
	var fail []*pending
	for _, p := range queue {
		if p.state.CompareAndSwap(pendingQueued, pendingTaken) {
			fail = append(fail, p)
		}
	}
	o.refused += uint64(len(fail))
	l.stats.RefusedTotal += uint64(len(fail))
	l.mu.Unlock()
	for _, p := range fail {
		p.done <- o.err
	}
}

// probe tries to end the outage: it cuts the file back, then writes and
// fsyncs the EventOutage record. If that works the log resumes; otherwise
// it waits longer and tries again.
func (l *Log) probe() {
	l.mu.Lock()
	o := l.out
	o.probing = true // appends now queue behind the probe instead of failing
	refused, since, cause := o.refused, o.since, o.cause
	l.mu.Unlock()

	err := l.cutBack()
	if err == nil {
		until := l.now().UTC()
		rec := &Record{Time: until, Event: EventOutage, Decision: DecisionInfo, Detail: map[string]string{
			"since":    since.UTC().Format(time.RFC3339Nano),
			"until":    until.Format(time.RFC3339Nano),
			"duration": until.Sub(since).Round(time.Millisecond).String(),
			"refused":  strconv.FormatUint(refused, 10),
			"error":    cause.Error(),
		}}
		err = l.writeRecord(rec)
		if err == nil {
			l.mu.Lock()
			l.out = nil
			l.failed = make(chan struct{})
			l.stats.Refused = refused
			l.mu.Unlock()
			l.log.Warn("audit log writable again: outage recorded, appends resume",
				zap.String("path", l.path), zap.Uint64("seq", rec.Seq), zap.Time("since", since),
				zap.Duration("duration", until.Sub(since)), zap.Uint64("refused", refused))
			return
		}
		l.cutBack() // best effort; the next probe cuts again first
	}
	l.mu.Lock()
	o.probing = false
	l.stats.Failures++
	queue := l.queue
	l.queue = nil
	l.mu.Unlock()
	l.refuseQueued(queue)
	l.w.probeWait = min(2*l.w.probeWait, 10*l.opts.ProbeInterval)
	l.w.probeAt = time.Now().Add(l.w.probeWait)
	l.log.Warn("audit log still not writable", zap.String("path", l.path), zap.Error(err), zap.Duration("probe_in", l.w.probeWait))
}
