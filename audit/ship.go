package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Shipping copies the audit log to a second sink (syslog, stdout) for a
// log collector. The file stays the source of truth: a [Shipper] follows it
// like `tail -f`, so only records already on disk (written and fsynced) are
// shipped, and it never touches the writer: a slow or dead destination
// cannot block or slow the gateway.
//
// Delivery is at least once. Every record carries its seq, so a receiver
// dedupes by (host, seq); after a destination failure the shipper resends
// every record the destination had not confirmed.

// Destination receives shipped records, one at a time, in log order.
//
// Send and Unacked (see [Acker]) are called from the shipper's goroutine
// only; Close may be called from another one and must make a blocked Send
// return.
type Destination interface {
	// Send delivers one record. line is the record's exact line as written
	// in the log, without its '\n'; it and rec are only valid during the
	// call. A nil error means the destination accepted the record. An error
	// means the destination is broken: the shipper backs off, then calls
	// Send again, starting with the oldest record not yet confirmed (the
	// destination reconnects on that Send).
	Send(line []byte, rec *Record) error
	// Close releases the destination. The shipper's Run calls it once, as
	// soon as its ctx ends (a Send may be in progress).
	Close() error
}

// Acker is implemented by a Destination that accepts records before it
// knows they arrived (a socket): the shipper keeps every accepted record
// until the destination confirms it, and resends the unconfirmed ones
// after a failure. A Destination without Acker confirms a record when Send
// returns nil.
type Acker interface {
	// Unacked returns how many of the records most recently accepted by
	// Send since the last failure are not confirmed yet (0: all arrived).
	// An error means the destination has found itself broken since the
	// last Send; the shipper treats it like a failed Send.
	Unacked() (int, error)
}

// Shipper defaults.
const (
	DefaultShipPoll          = 250 * time.Millisecond
	DefaultShipMinBackoff    = 250 * time.Millisecond
	DefaultShipMaxBackoff    = 30 * time.Second
	DefaultShipStateInterval = time.Second
	DefaultShipMaxInFlight   = 10000
)

// Shipper follows the audit log at Path and sends every record, in order,
// to Dest. Set the fields, then call Run once; Stats may be called at any
// time.
//
// Where it starts: at seq FromSeq, or just after the last record confirmed
// in StateFile, whichever is later (FromSeq 0 with no state file: the
// oldest record available). If that record is older than the active file
// at Path, the rotated files beside it ([Segments]) are read first, in
// chain order.
//
// Rotation: when Path is renamed and a new file continues the chain there,
// the shipper reads the old file to its end, then goes on with the file
// holding the next seq, even if several rotations happened while it was
// behind. A final line still being written is waited for.
//
// Failures: a failed Send (or a broken connection reported by [Acker])
// makes it back off (MinBackoff doubling to MaxBackoff) and resend from the
// oldest unconfirmed record. Seq gaps and lines that are not records are
// logged and counted, not fatal: `beamgate audit verify` judges the file.
// Records are only skipped while positioning at the start (and after a
// truncation, up to what was already read): once caught up, a record whose
// seq was shipped before (a file truncated and written again) is shipped
// too, so the receiver holds both versions.
type Shipper struct {
	// Path is the active audit log file (audit.path).
	Path string
	// Dest receives the records. Run closes it when it returns.
	Dest Destination
	// FromSeq is the first seq to ship (see above).
	FromSeq uint64
	// StateFile, when set, is where the shipper keeps the seq and hash of
	// the last confirmed record (a small JSON file, replaced atomically at
	// most every StateInterval and when Run returns), so a restart resumes
	// there.
	StateFile string
	// Log receives warnings (destination failures, gaps); nil logs nothing.
	Log *zap.Logger

	MinBackoff    time.Duration // first retry delay after a failure; 0 means DefaultShipMinBackoff
	MaxBackoff    time.Duration // longest retry delay; 0 means DefaultShipMaxBackoff
	Poll          time.Duration // how often a caught-up shipper looks for new lines; 0 means DefaultShipPoll
	StateInterval time.Duration // how often StateFile is rewritten while shipping; 0 means DefaultShipStateInterval
	// MaxInFlight bounds the records sent but not yet confirmed (kept in
	// memory for a resend); at the bound the shipper waits for
	// confirmations. 0 means DefaultShipMaxInFlight.
	MaxInFlight int

	running atomic.Bool
	shipped atomic.Uint64
	sent    atomic.Uint64
	resent  atomic.Uint64
	errs    atomic.Uint64
	skipped atomic.Uint64
	gaps    atomic.Uint64
	ackSeq  atomic.Uint64
	readSeq atomic.Uint64
	lastErr atomic.Pointer[string]
}

// ShipStats are a Shipper's counters, since Run started.
type ShipStats struct {
	Shipped   uint64 // records confirmed by the destination
	Sent      uint64 // successful Sends, resends included
	Resent    uint64 // Sends of records already sent once (after a failure)
	Errors    uint64 // destination failures
	Skipped   uint64 // lines not shipped: not a JSON record, or longer than MaxLineLen
	Gaps      uint64 // breaks in seq order found in the log (missing or repeated seqs)
	ShipSeq   uint64 // seq of the newest confirmed record (the state file's before the first)
	ReadSeq   uint64 // seq of the newest record read from the log
	HeadSeq   uint64 // seq of the newest complete record in the active file, read by Stats
	Lag       uint64 // HeadSeq - ShipSeq, or 0
	LastError string // the latest destination failure, "" if none
}

// Stats returns the shipper's counters. It reads the last line of the
// active file for HeadSeq (a few KiB).
func (s *Shipper) Stats() ShipStats {
	st := ShipStats{
		Shipped: s.shipped.Load(),
		Sent:    s.sent.Load(),
		Resent:  s.resent.Load(),
		Errors:  s.errs.Load(),
		Skipped: s.skipped.Load(),
		Gaps:    s.gaps.Load(),
		ShipSeq: s.ackSeq.Load(),
		ReadSeq: s.readSeq.Load(),
	}
	if p := s.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	if seq, ok := shipLastSeq(s.Path); ok {
		st.HeadSeq = seq
	}
	st.HeadSeq = max(st.HeadSeq, st.ReadSeq)
	if st.HeadSeq > st.ShipSeq {
		st.Lag = st.HeadSeq - st.ShipSeq
	}
	return st
}

// shipState is the content of a Shipper's state file.
type shipState struct {
	Seq  uint64    `json:"seq"`  // last confirmed record
	Hash string    `json:"hash"` // its hash
	Time time.Time `json:"time"` // when written
}

// readShipState reads a state file; a missing file is the zero state.
func readShipState(path string) (shipState, error) {
	var st shipState
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("audit: ship state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return shipState{}, fmt.Errorf("audit: ship state %s: %w", path, err)
	}
	return st, nil
}

// writeShipState replaces the state file atomically (temp file, fsync,
// rename).
func writeShipState(path string, st shipState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("audit: ship state: %w", err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("audit: ship state: %w", err)
	}
	return nil
}

// shipItem is a record read from the log and not yet confirmed.
type shipItem struct {
	rec   Record
	line  []byte
	sends int
}

// shipRun is the state of one Run.
type shipRun struct {
	s     *Shipper
	log   *zap.Logger
	acker Acker

	cur  *shipFile
	next uint64 // seq expected next from the log (0: any)
	skip bool   // skipping records below next (positioning after a restart)

	window   []*shipItem // read, not confirmed; window[:onConn] sent on the current connection
	onConn   int
	failed   bool
	failures int // consecutive, for the backoff
	backoff  time.Duration

	stateSeq   uint64 // the state file's seq at start
	stateHash  string
	ackHash    string
	dirty      bool
	lastSave   time.Time
	noFileLogd bool
}

// Run ships records until ctx ends, then closes Dest, saves the state file
// and returns ctx's error. It returns early only for a bad configuration
// (no Path or Dest, or a second Run). Records sent but not yet confirmed
// when it returns are sent again by the next Run (with the same
// StateFile).
func (s *Shipper) Run(ctx context.Context) error {
	if s.Path == "" {
		return errors.New("audit: shipper: no audit log path")
	}
	if s.Dest == nil {
		return errors.New("audit: shipper: no destination")
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("audit: shipper: Run called twice")
	}
	// Close the destination at cancel, not after: that ends a Send stuck
	// on a receiver that stopped reading.
	var closeOnce sync.Once
	closeDest := func() { closeOnce.Do(func() { s.Dest.Close() }) }
	defer closeDest()
	defer context.AfterFunc(ctx, closeDest)()
	r := &shipRun{s: s, log: s.Log, next: s.FromSeq, skip: true}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	r.acker, _ = s.Dest.(Acker)
	r.backoff = s.minBackoff()
	if s.StateFile != "" {
		st, err := readShipState(s.StateFile)
		if err != nil {
			// Resending is harmless (receivers dedupe by seq); skipping
			// would not be.
			r.log.Error("audit shipper: unreadable state file; shipping from from_seq instead", zap.Error(err))
		} else if st.Seq > 0 {
			r.stateSeq, r.stateHash, r.ackHash = st.Seq, st.Hash, st.Hash
			s.ackSeq.Store(st.Seq)
			r.next = max(r.next, st.Seq+1)
		}
	}
	if r.next > 0 {
		s.ackSeq.Store(max(s.ackSeq.Load(), r.next-1))
	}
	defer func() {
		if r.cur != nil {
			r.cur.f.Close()
		}
	}()
	defer r.saveState(true)
	return r.loop(ctx)
}

func (s *Shipper) minBackoff() time.Duration {
	if s.MinBackoff > 0 {
		return s.MinBackoff
	}
	return DefaultShipMinBackoff
}

func (s *Shipper) maxBackoff() time.Duration {
	if s.MaxBackoff > 0 {
		return max(s.MaxBackoff, s.minBackoff())
	}
	return max(DefaultShipMaxBackoff, s.minBackoff())
}

func (s *Shipper) poll() time.Duration {
	if s.Poll > 0 {
		return s.Poll
	}
	return DefaultShipPoll
}

func (s *Shipper) maxInFlight() int {
	if s.MaxInFlight > 0 {
		return s.MaxInFlight
	}
	return DefaultShipMaxInFlight
}

func shipSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *shipRun) loop(ctx context.Context) error {
	s := r.s
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.failed {
			if !shipSleep(ctx, r.backoff) {
				continue
			}
			r.backoff = min(2*r.backoff, s.maxBackoff())
			r.failed = false
			r.onConn = 0
		}
		// Send what the current connection has not seen: after a failure,
		// the whole unconfirmed window, oldest first.
		if r.onConn < len(r.window) {
			it := r.window[r.onConn]
			if err := s.Dest.Send(it.line, &it.rec); err != nil {
				r.fail(err)
				continue
			}
			r.onConn++
			it.sends++
			s.sent.Add(1)
			if it.sends > 1 {
				s.resent.Add(1)
			}
			r.checkAcks()
			continue
		}
		if len(r.window) >= s.maxInFlight() {
			if !r.checkAcks() && len(r.window) >= s.maxInFlight() {
				shipSleep(ctx, s.poll()/5)
			}
			continue
		}
		if it := r.read(); it != nil {
			r.window = append(r.window, it)
			continue
		}
		// Caught up.
		if !r.failed {
			r.checkAcks()
		}
		r.saveState(false)
		shipSleep(ctx, s.poll())
	}
}

// fail records a destination failure; the loop backs off, then resends.
func (r *shipRun) fail(err error) {
	s := r.s
	s.errs.Add(1)
	msg := err.Error()
	s.lastErr.Store(&msg)
	r.failed = true
	r.failures++
	r.log.Warn("audit shipper: destination failed; will resend unconfirmed records",
		zap.Error(err), zap.Int("unconfirmed", len(r.window)), zap.Int("attempt", r.failures),
		zap.Duration("retry_in", r.backoff))
}

// checkAcks drops confirmed records from the window. It reports whether any
// were confirmed.
func (r *shipRun) checkAcks() bool {
	confirmed := r.onConn
	if r.acker != nil && r.onConn > 0 {
		n, err := r.acker.Unacked()
		if err != nil {
			r.fail(err)
			return false
		}
		confirmed = r.onConn - min(max(n, 0), r.onConn)
	}
	if confirmed == 0 {
		return false
	}
	last := r.window[confirmed-1]
	clear(r.window[:confirmed])
	r.window = r.window[confirmed:]
	r.onConn -= confirmed
	s := r.s
	s.shipped.Add(uint64(confirmed))
	s.ackSeq.Store(last.rec.Seq)
	r.ackHash = last.rec.Hash
	r.dirty = true
	if r.failures > 0 {
		r.log.Info("audit shipper: destination recovered", zap.Int("failures", r.failures), zap.Uint64("seq", last.rec.Seq))
		r.failures = 0
	}
	r.backoff = s.minBackoff()
	r.saveState(false)
	return true
}

func (r *shipRun) saveState(force bool) {
	s := r.s
	if s.StateFile == "" || !r.dirty {
		return
	}
	now := time.Now()
	iv := s.StateInterval
	if iv <= 0 {
		iv = DefaultShipStateInterval
	}
	if !force && now.Sub(r.lastSave) < iv {
		return
	}
	st := shipState{Seq: s.ackSeq.Load(), Hash: r.ackHash, Time: now.UTC()}
	if err := writeShipState(s.StateFile, st); err != nil {
		r.log.Error("audit shipper: cannot save state", zap.Error(err))
		return
	}
	r.dirty, r.lastSave = false, now
}

// read returns the next record to ship, or nil when caught up (nothing new
// yet).
func (r *shipRun) read() *shipItem {
	s := r.s
	for {
		if r.cur == nil && !r.open() {
			return nil
		}
		line, err := r.cur.nextLine()
		if err == nil {
			r.cur.drained = false
			it := r.accept(line)
			if it != nil {
				return it
			}
			continue
		}
		var tooLong *LineTooLongError
		if errors.As(err, &tooLong) {
			s.skipped.Add(1)
			r.log.Error("audit shipper: line too long, not shipped", zap.String("file", r.cur.name), zap.Int("line", tooLong.Line))
			continue
		}
		if !errors.Is(err, io.EOF) {
			r.log.Error("audit shipper: read failed; reopening", zap.String("file", r.cur.name), zap.Error(err))
			r.cur.f.Close()
			r.cur, r.skip = nil, true
			return nil
		}
		// At the end of the current file.
		if r.skip {
			r.endSkip()
		}
		if !r.advance() {
			return nil
		}
	}
}

// accept parses one line and decides whether to ship it.
func (r *shipRun) accept(line []byte) *shipItem {
	s := r.s
	var rec Record
	if err := json.Unmarshal(line, &rec); err != nil {
		s.skipped.Add(1)
		r.log.Error("audit shipper: line is not a JSON record, not shipped", zap.String("file", r.cur.name), zap.Int("line", r.cur.line), zap.Error(err))
		return nil
	}
	if r.skip {
		if rec.Seq < r.next {
			return nil
		}
		r.skip = false
	}
	switch {
	case r.next == 0:
	case rec.Seq > r.next:
		s.gaps.Add(1)
		r.log.Warn("audit shipper: records missing from the log", zap.Uint64("from_seq", r.next), zap.Uint64("to_seq", rec.Seq-1), zap.String("file", r.cur.name))
	case rec.Seq < r.next:
		s.gaps.Add(1)
		r.log.Warn("audit shipper: seq went back (log replaced?); shipping anyway", zap.Uint64("expected", r.next), zap.Uint64("seq", rec.Seq), zap.String("file", r.cur.name))
	}
	if r.stateSeq > 0 && rec.Seq == r.stateSeq+1 && r.stateHash != "" && rec.Prev != r.stateHash {
		s.gaps.Add(1)
		r.log.Error("audit shipper: the log does not continue the chain shipped before (replaced?)",
			zap.Uint64("seq", rec.Seq), zap.String("prev", rec.Prev), zap.String("shipped_hash", r.stateHash))
	}
	r.stateSeq = 0
	r.next = rec.Seq + 1
	s.readSeq.Store(rec.Seq)
	return &shipItem{rec: rec, line: bytes.Clone(line)}
}

// endSkip ends the positioning phase at the end of a file.
func (r *shipRun) endSkip() {
	r.skip = false
	if r.next > 1 && r.cur.lastSeq+1 < r.next {
		r.log.Warn("audit shipper: the log ends before the resume point (truncated or replaced?); shipping new records as they come",
			zap.Uint64("log_ends_at", r.cur.lastSeq), zap.Uint64("resume_at", r.next), zap.String("file", r.cur.name))
	}
}

// open opens the file holding r.next (or the oldest one).
func (r *shipRun) open() bool {
	cands := shipCandidates(r.s.Path)
	if len(cands) == 0 {
		if !r.noFileLogd {
			r.log.Warn("audit shipper: audit log not found; waiting", zap.String("path", r.s.Path))
			r.noFileLogd = true
		}
		return false
	}
	r.noFileLogd = false
	c := cands[shipChoose(cands, r.next)]
	f, err := os.Open(c.path)
	if err != nil {
		r.log.Warn("audit shipper: cannot open audit log; waiting", zap.Error(err))
		return false
	}
	r.cur = newShipFile(f, c.path, c.path == r.s.Path)
	return true
}

// advance handles the end of the current file: rotation, truncation. It
// reports whether reading should go on now (a new file was opened, or the
// current one must be read once more).
func (r *shipRun) advance() bool {
	cur := r.cur
	fi, err := cur.f.Stat()
	if err != nil {
		return false
	}
	if fi.Size() < cur.off {
		// Complete lines vanished: someone truncated the file. What was
		// read stays shipped; re-read from the start, skipping below next.
		r.s.gaps.Add(1)
		r.log.Error("audit shipper: audit log truncated while being followed", zap.String("file", cur.name), zap.Int64("size", fi.Size()), zap.Int64("was", cur.off))
		cur.reset()
		r.skip = true
		return true
	}
	now, err := os.Stat(r.s.Path)
	if err != nil {
		return false // rotation in progress (or the file is gone): wait
	}
	if cur.active && os.SameFile(fi, now) {
		return false // still the active file: wait for more lines
	}
	cur.active = false
	// The path names another file (rotation), or we are reading a rotated
	// file: find the one holding the next seq.
	cands := shipCandidates(r.s.Path)
	i := shipChoose(cands, r.next)
	if i < 0 || i >= len(cands) {
		return false
	}
	if os.SameFile(cands[i].fi, fi) {
		// Nothing newer holds r.next. A newer file that already has
		// records (a gap) is the one to go on with: the writer has left
		// this one.
		i = slices.IndexFunc(cands, func(c shipCandidate) bool { return c.has && c.first >= r.next && !os.SameFile(c.fi, fi) })
		if i < 0 {
			return false
		}
	}
	// Read the current file to its end once more: the writer may have
	// added its last records between our end of file and the switch.
	if !cur.drained {
		cur.drained = true
		return true
	}
	if cur.partial > 0 {
		r.s.skipped.Add(1)
		r.log.Error("audit shipper: rotated file ends with an incomplete line, not shipped", zap.String("file", cur.name), zap.Int("bytes", cur.partial))
	}
	f, err := os.Open(cands[i].path)
	if err != nil {
		return false
	}
	cur.f.Close()
	r.cur = newShipFile(f, cands[i].path, cands[i].path == r.s.Path)
	return true
}

// shipFile reads complete lines from one log file with ReadAt. At the end
// of the file it drops a partial final line and reads it again next time,
// so bytes from before a truncation are never joined to bytes after it.
type shipFile struct {
	f       *os.File
	name    string
	active  bool  // opened as the active path, not yet seen replaced
	off     int64 // file offset of buf[pos]
	buf     []byte
	pos     int
	line    int    // lines consumed
	lastSeq uint64 // seq of the last line parsed by the shipper (for messages)
	partial int    // bytes of an incomplete final line at the last end of file
	drained bool   // read to the end once more after a rotation was seen
	tooLong bool   // discarding an over-long line up to its '\n'
}

func newShipFile(f *os.File, name string, active bool) *shipFile {
	return &shipFile{f: f, name: name, active: active, buf: make([]byte, 0, 64<<10)}
}

func (sf *shipFile) reset() {
	sf.off, sf.buf, sf.pos, sf.line, sf.partial, sf.tooLong = 0, sf.buf[:0], 0, 0, 0, false
}

// nextLine returns the next complete line without its '\n' (valid until the
// next call), io.EOF at the end of the file, or a *LineTooLongError for a
// line over MaxLineLen (which is then skipped).
func (sf *shipFile) nextLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(sf.buf[sf.pos:], '\n'); i >= 0 {
			line := sf.buf[sf.pos : sf.pos+i]
			sf.pos += i + 1
			sf.off += int64(i + 1)
			sf.line++
			if sf.tooLong {
				sf.tooLong = false
				return nil, &LineTooLongError{Line: sf.line}
			}
			if seq, ok := shipPeekSeq(line); ok {
				sf.lastSeq = seq
			}
			return line, nil
		}
		rest := len(sf.buf) - sf.pos
		if rest >= MaxLineLen || sf.tooLong && rest > 0 {
			// Discard what we have of an over-long line; keep looking for
			// its end.
			sf.tooLong = true
			sf.off += int64(rest)
			sf.buf, sf.pos, rest = sf.buf[:0], 0, 0
		}
		copy(sf.buf, sf.buf[sf.pos:])
		sf.buf, sf.pos = sf.buf[:rest], 0
		if cap(sf.buf)-rest < 16<<10 {
			nb := make([]byte, rest, min(2*cap(sf.buf), MaxLineLen+64<<10))
			copy(nb, sf.buf)
			sf.buf = nb
		}
		n, err := sf.f.ReadAt(sf.buf[rest:cap(sf.buf)], sf.off+int64(rest))
		sf.buf = sf.buf[:rest+n]
		if n > 0 {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		sf.partial = rest
		sf.buf = sf.buf[:0] // read the partial line again next time
		if sf.tooLong {
			sf.off += int64(rest)
			sf.partial = 0
		}
		return nil, io.EOF
	}
}

// shipPeekSeq reads the seq of a line cheaply, for messages.
func shipPeekSeq(line []byte) (uint64, bool) {
	const key = `"seq":`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return 0, false
	}
	var n uint64
	j := i + len(key)
	for ; j < len(line) && '0' <= line[j] && line[j] <= '9'; j++ {
		n = n*10 + uint64(line[j]-'0')
	}
	return n, j > i+len(key)
}

// shipCandidate is a file that may hold records of the log at path.
type shipCandidate struct {
	path  string
	fi    os.FileInfo
	first uint64 // seq of its first record
	has   bool   // it has a complete first record
}

// shipCandidates lists the files of the log at path ([Segments]: the
// rotated files and the active one; not the quarantined torn lines or the
// CLI sibling logs, which are chains of their own) in chain order: by the
// seq of their first record, files without one (a new, empty active file)
// last, the active file last among equals.
func shipCandidates(path string) []shipCandidate {
	var out []shipCandidate
	files, err := Segments(path)
	if err != nil {
		return nil
	}
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || slices.ContainsFunc(out, func(c shipCandidate) bool { return os.SameFile(c.fi, fi) }) {
			continue
		}
		c := shipCandidate{path: p, fi: fi}
		c.first, c.has = shipFirstSeq(p)
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(a, b shipCandidate) int {
		switch {
		case a.has != b.has:
			if a.has {
				return -1
			}
			return 1
		case a.first != b.first:
			if a.first < b.first {
				return -1
			}
			return 1
		case a.path == path:
			return 1
		case b.path == path:
			return -1
		}
		return strings.Compare(a.path, b.path)
	})
	return out
}

// shipChoose picks the candidate to read seq next from: the last one whose
// first record is at or before next, else the oldest with records, else
// the first (an empty active file).
func shipChoose(cands []shipCandidate, next uint64) int {
	if len(cands) == 0 {
		return -1
	}
	best := -1
	for i, c := range cands {
		if c.has && c.first <= next {
			best = i
		}
	}
	if best >= 0 {
		return best
	}
	return 0 // sorted: the oldest with records, or a file without any
}

// shipFirstSeq returns the seq of the first record of the file at path.
func shipFirstSeq(path string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sf := newShipFile(f, path, false)
	line, err := sf.nextLine()
	if err != nil {
		return 0, false
	}
	var r struct {
		Seq *uint64 `json:"seq"`
	}
	if json.Unmarshal(line, &r) != nil || r.Seq == nil {
		return 0, false
	}
	return *r.Seq, true
}

// shipLastSeq returns the seq of the last complete record of the file at
// path, reading backwards from its end.
func shipLastSeq(path string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, false
	}
	size := fi.Size()
	for n := int64(4 << 10); n <= 4*MaxLineLen; n *= 4 {
		start := max(size-n, 0)
		buf := make([]byte, size-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, false
		}
		end := bytes.LastIndexByte(buf, '\n') // ends the last complete line
		begin := -1
		if end >= 0 {
			begin = bytes.LastIndexByte(buf[:end], '\n')
		}
		if end >= 0 && (begin >= 0 || start == 0) {
			return shipPeekSeq(buf[begin+1 : end])
		}
		if start == 0 {
			return 0, false
		}
	}
	return 0, false
}

// Stdout is a Destination writing each record's line, as is, followed by
// '\n', to a writer (os.Stdout for a container's log collector). A record
// confirms when the Write returns.
type Stdout struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewStdout returns a Stdout destination writing to w (os.Stdout if nil).
// Each line is one Write call. Close does not close w.
func NewStdout(w io.Writer) *Stdout {
	if w == nil {
		w = os.Stdout
	}
	return &Stdout{w: w}
}

// Send writes line and a newline.
func (d *Stdout) Send(line []byte, _ *Record) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.buf = append(append(d.buf[:0], line...), '\n')
	n, err := d.w.Write(d.buf)
	if err == nil && n < len(d.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("audit: ship to stdout: %w", err)
	}
	return nil
}

// Close does nothing (the writer is the caller's).
func (d *Stdout) Close() error { return nil }
