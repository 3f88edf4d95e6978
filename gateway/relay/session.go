package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"beamgate/audit"
	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
	"beamgate/policy"

	"go.uber.org/zap"
)

// session is one relayed connection. Its goroutines: the engineer reader
// (decode, decide, audit, forward), the production reader (always drains
// production into the engineer queue), the engineer writer (the only
// writer of econn: queue, answers and ticks), the production ticker, and
// the watchdog. The first failure cancels ctx with its cause.
type session struct {
	r      *Relay
	eng    Engineer
	target Target
	econn  net.Conn
	pconn  net.Conn
	cancel context.CancelCauseFunc
	id     string

	engName string // set by handshake
	legs    *legs
	polMu   sync.Mutex // guards pol's creation against setPolicy, and eng.Profile/Mode
	pol     *policy.Session
	pw      *dist.FrameWriter // production leg
	out     outQueue          // engineer leg

	shell                              atomic.Pointer[remoteShell] // a remote shell under a break-glass grant (shell.go)
	bytesIn, bytesOut, msgsIn, msgsOut atomic.Int64
	budgetCut                          atomic.Bool  // ended by overBudget
	engSeen, prodSeen                  atomic.Int64 // unix nanos of the last inbound frame or tick
	engTick, prodTick                  tickRate     // how often each leg's peer ticks
}

// setPolicy changes the session's profile and mode (Reconcile). Before
// the handshake finished there is no policy session yet: the new profile
// is then the one it starts with.
func (s *session) setPolicy(p *policy.Profile, mode policy.Mode) {
	if p == nil {
		return
	}
	s.polMu.Lock()
	defer s.polMu.Unlock()
	s.eng.Profile, s.eng.Mode = p, mode
	if s.pol != nil {
		s.pol.SetProfile(p, mode)
	}
}

func (s *session) run(ctx context.Context) error {
	lg, err := s.handshake(ctx)
	if err != nil {
		var rf *refusal
		if !errors.As(err, &rf) {
			rf = refuse("handshake", err.Error(), err)
		}
		s.r.log.Info("relay handshake refused", zap.String("session", s.id), zap.String("user", s.eng.User),
			zap.String("engineer", s.engName), zap.String("target", s.target.Name), zap.String("rule", rf.rule), zap.String("reason", rf.reason))
		s.r.aud.Record(ctx, audit.After, s.record(audit.EventSessionRefused, audit.DecisionDeny, rf.rule, rf.reason))
		return err
	}
	s.legs = lg
	s.pconn = lg.pconn
	defer s.pconn.Close()
	s.polMu.Lock()
	s.pol = policy.NewSession(policy.SessionConfig{
		Profile: s.eng.Profile, Mode: s.eng.Mode,
		Engineer: term.Atom(lg.engName), EngineerCreation: lg.engCreation,
		Production: term.Atom(s.target.Name), ProductionCreation: lg.prodCreation,
		Known: s.r.knownAtoms(s.target.Name),
	})
	profName, mode := s.eng.Profile.Name, s.eng.Mode
	s.polMu.Unlock()
	s.pw = dist.NewFrameWriter(s.pconn)
	s.out.init(s.r.limits.MaxBuffered)
	if b := s.r.limits.BufferBudget; b > 0 {
		s.out.total, s.out.limit, s.out.over = &s.r.buffered, b, s.r.overBudget
	}
	now := s.r.cfg.Now().UnixNano()
	s.engSeen.Store(now)
	s.prodSeen.Store(now)

	start := s.record(audit.EventSessionStart, audit.DecisionAllow, "", "")
	start.Detail = map[string]string{"flags": lg.flags.String(), "mode": string(mode), "profile": profName}
	if err := s.r.aud.Record(ctx, audit.Gate, start); err != nil {
		return fmt.Errorf("relay: audit log unavailable, session refused: %w", err)
	}
	s.r.log.Info("relay session started", zap.String("session", s.id), zap.String("user", s.eng.User),
		zap.String("engineer", lg.engName), zap.String("target", s.target.Name))

	var wg sync.WaitGroup
	fail := func(err error) { s.cancel(err) }
	for _, f := range []func(context.Context) error{s.engineerReader, s.productionReader, s.engineerWriter, s.productionTicker, s.watchdog} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail(f(ctx))
		}()
	}
	<-ctx.Done()
	cause := context.Cause(ctx)
	s.econn.Close()
	s.pconn.Close()
	s.out.close()
	wg.Wait()

	reason := endReason(cause)
	s.closeShell(ctx, reason)
	end := s.record(audit.EventSessionEnd, audit.DecisionInfo, "", reason)
	end.BytesIn, end.BytesOut = s.bytesIn.Load(), s.bytesOut.Load()
	end.MsgsIn, end.MsgsOut = s.msgsIn.Load(), s.msgsOut.Load()
	s.r.aud.Record(ctx, audit.After, end)
	s.r.log.Info("relay session ended", zap.String("session", s.id), zap.String("user", s.eng.User), zap.String("reason", reason),
		zap.Int64("bytes_in", end.BytesIn), zap.Int64("bytes_out", end.BytesOut))
	var ee *EndError
	if errors.As(cause, &ee) {
		return ee
	}
	return nil
}

var (
	errEngineerClosed   = errors.New("the engineer's node closed the connection")
	errProductionClosed = errors.New("production closed the connection")
)

func endReason(cause error) string {
	switch {
	case cause == nil:
		return "ended"
	case errors.Is(cause, context.Canceled):
		return "cancelled"
	}
	return cause.Error()
}

func (s *session) record(event audit.Event, decision audit.Decision, rule, reason string) *audit.Record {
	return &audit.Record{
		Event: event, Session: s.id, User: s.eng.User, KeyID: s.eng.KeyID, CertSerial: s.eng.CertSerial,
		SourceAddr: s.eng.SourceAddr, Engineer: s.engName, Target: s.target.Name, Cluster: s.target.Cluster,
		Decision: decision, Rule: rule, Reason: reason,
	}
}

func (s *session) engineerLimits() *term.Limits {
	l := term.DefaultLimits()
	l.MaxBinary = s.r.limits.MaxEngineerFrame
	return &l
}

// engineerReader decodes, decides, audits and then forwards or answers
// every engineer→production message.
func (s *session) engineerReader(ctx context.Context) error {
	fr := dist.NewFrameReader(s.econn, s.r.limits.MaxEngineerFrame)
	lim := s.engineerLimits()
	var buf []byte
	for {
		frame, err := fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return errEngineerClosed
			}
			var tooBig *dist.FrameTooLargeError
			if errors.As(err, &tooBig) {
				rec := s.record(audit.EventMessage, audit.DecisionDeny, "frame-size", fmt.Sprintf("a %d-byte frame exceeds the %d-byte limit", tooBig.Len, tooBig.Max))
				rec.Dir = audit.DirE2P
				s.r.aud.Record(ctx, audit.After, rec) // the session ends either way
				return &EndError{Reason: "the engineer sent an oversize frame"}
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("reading from the engineer: %w", err)
		}
		now := s.r.cfg.Now()
		s.engTick.observe(now, s.engSeen.Swap(now.UnixNano()), len(frame) == 0)
		if len(frame) == 0 {
			continue
		}
		s.msgsIn.Add(1)
		s.bytesIn.Add(int64(len(frame) + 4))
		m, err := dist.DecodeFrame(frame, lim)
		if err != nil {
			rec := s.record(audit.EventMessage, audit.DecisionDeny, "malformed", "undecodable message: "+err.Error())
			rec.Dir, rec.Size = audit.DirE2P, len(frame)
			ctrl, _, cerr := dist.DecodeControl(frame, lim)
			if cerr == nil {
				rec.Op = ctrl.Op().String()
			}
			// Gate: the session answers the engineer and goes on only
			// while its records reach the disk.
			if aerr := s.r.aud.Record(ctx, audit.Gate, rec); aerr != nil {
				return aerr
			}
			if cerr != nil {
				// The frame itself is garbage: the stream cannot be trusted.
				return &EndError{Reason: "the engineer sent a malformed message: " + err.Error()}
			}
			// A well-formed control message with a payload beamgate
			// refuses to decode (over a limit, or a term type it does not
			// police, such as an OTP 29 native record): refuse only this
			// message, and fail a spawn request at once.
			if err := s.answer(s.malformedAnswer(ctrl)); err != nil {
				return err
			}
			continue
		}
		d := s.pol.Evaluate(m)
		if s.admitShell(ctx, d) {
			d = s.pol.Evaluate(m) // under the grant now
		}
		rec := s.record(audit.EventMessage, audit.Decision(d.Verdict.String()), d.Rule, d.Reason)
		rec.Dir, rec.Op, rec.Size, rec.Args, rec.Write = audit.DirE2P, d.Op, len(frame), d.Args(), d.Write()
		if isMFA(d.What) {
			rec.MFA = d.What
		} else {
			rec.Dest = d.What
		}
		// Audit before forward: the record is on disk before the message
		// leaves, or the session ends.
		if err := s.r.aud.Record(ctx, audit.Gate, rec); err != nil {
			return fmt.Errorf("audit log failed, session ended: %w", err)
		}
		if d.Verdict.Forwarded() && s.shell.Load() != nil {
			if err := s.recordShellInput(ctx, m); err != nil {
				return fmt.Errorf("audit log failed, session ended: %w", err)
			}
		}
		if d.Verdict.Forwarded() {
			buf = dist.AppendFrame(buf[:0], frame)
			if err := s.pw.WriteFrame(buf); err != nil {
				return fmt.Errorf("writing to production: %w", err)
			}
			if cap(buf) > 1<<20 {
				buf = nil
			}
		} else {
			if err := s.answer(d.Answer); err != nil {
				return err
			}
			if d.Cleanup != nil {
				if err := s.forwardCleanup(ctx, d.Cleanup); err != nil {
					return err
				}
			}
		}
		if d.Fatal {
			return &EndError{Reason: "policy ended the session: " + d.Reason}
		}
	}
}

// forwardCleanup sends production a DEMONITOR_P on the engineer's behalf
// (see policy.Decision.Cleanup), audited before it leaves like any other
// message.
func (s *session) forwardCleanup(ctx context.Context, c *dist.DemonitorP) error {
	frame, err := dist.AppendMessageFrame(nil, dist.Message{Control: c})
	if err != nil {
		return fmt.Errorf("relay: encoding a monitor cleanup: %w", err)
	}
	rec := s.record(audit.EventMessage, audit.DecisionAllow, "monitor.cleanup", "removes the monitor of a refused call, whose caller was told the target is down")
	rec.Dir, rec.Op, rec.Size, rec.Dest = audit.DirGateway, c.Op().String(), len(frame)-4, term.Format(c.To, 128)
	if err := s.r.aud.Record(ctx, audit.Gate, rec); err != nil {
		return fmt.Errorf("audit log failed, session ended: %w", err)
	}
	if err := s.pw.WriteFrame(frame); err != nil {
		return fmt.Errorf("writing to production: %w", err)
	}
	return nil
}

func isMFA(what string) bool { return strings.Contains(what, "/") }

// productionReader drains production as fast as it sends, whatever the
// engineer does, into the engineer queue.
func (s *session) productionReader(ctx context.Context) error {
	fr := dist.NewFrameReader(s.pconn, s.r.limits.MaxProductionFrame)
	fr.TrustedSize = s.r.limits.MaxProductionFrame
	known := s.pol.Known()
	skipLim := term.Limits{MaxDepth: 1000, MaxElements: 1 << 30, MaxAtomLen: 255, MaxBinary: s.r.limits.MaxProductionFrame, MaxBigBytes: 1 << 20}
	learn := (&atomLearner{set: known}).learn
	for {
		frame, err := fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return errProductionClosed
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("reading from production: %w", err)
		}
		now := s.r.cfg.Now()
		s.prodTick.observe(now, s.prodSeen.Swap(now.UnixNano()), len(frame) == 0)
		if len(frame) == 0 {
			continue
		}
		s.msgsOut.Add(1)
		s.bytesOut.Add(int64(len(frame) + 4))
		ctrl, off, err := dist.DecodeControl(frame, nil)
		if err == nil {
			s.pol.Observe(ctrl, frame[off:])
			if s.shell.Load() != nil {
				s.recordShellOutput(ctx, ctrl, frame[off:])
			}
			// Learn which atoms exist on production, so engineers may send
			// them back without spending their atom budget.
			if _, err := term.SkipAtoms(frame[1:], &skipLim, learn); err == nil && off < len(frame) {
				_, _ = term.SkipAtoms(frame[off:], &skipLim, learn)
			}
		} else {
			s.r.log.Warn("undecodable control message from production, forwarded as is",
				zap.String("session", s.id), zap.String("target", s.target.Name), zap.Error(err))
		}
		var pushErr error
		if len(frame) >= detachFrame {
			// Large frames are queued as they were read, without a copy.
			fr.Detach()
			hdr := binary.BigEndian.AppendUint32(make([]byte, 0, 4), uint32(len(frame)))
			pushErr = s.out.push(hdr, frame)
		} else {
			pushErr = s.out.push(dist.AppendFrame(make([]byte, 0, len(frame)+4), frame))
		}
		if err := pushErr; err != nil {
			rec := s.record(audit.EventSessionCut, audit.DecisionInfo, "engineer-too-slow", err.Error())
			s.r.aud.Record(ctx, audit.After, rec)
			return &EndError{Reason: err.Error()}
		}
	}
}

// engineerWriter is the only writer of the engineer connection: queued
// production frames, synthesised answers and ticks.
func (s *session) engineerWriter(ctx context.Context) error {
	t := time.NewTicker(tickCheck)
	defer t.Stop()
	last := s.r.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.out.ready:
			frames, closed := s.out.take()
			if closed {
				return context.Cause(ctx)
			}
			if len(frames) == 0 {
				continue
			}
			bufs := net.Buffers(frames)
			_, err := bufs.WriteTo(s.econn)
			s.out.written()
			if err != nil {
				return fmt.Errorf("writing to the engineer: %w", err)
			}
			last = s.r.cfg.Now()
		case <-t.C:
			now := s.r.cfg.Now()
			if now.Sub(last) >= s.engTick.interval() {
				if err := dist.WriteTick(s.econn); err != nil {
					return fmt.Errorf("ticking the engineer: %w", err)
				}
				last = now
			}
		}
	}
}

func (s *session) productionTicker(ctx context.Context) error {
	t := time.NewTicker(tickCheck)
	defer t.Stop()
	lastTick := s.r.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			now := s.r.cfg.Now()
			if now.Sub(lastTick) < s.prodTick.interval() {
				continue
			}
			if _, err := s.pw.TickIfIdle(); err != nil {
				return fmt.Errorf("ticking production: %w", err)
			}
			lastTick = now
		}
	}
}

// watchdog ends the session when a leg falls silent or the audit log
// fails.
func (s *session) watchdog(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	silence := s.r.limits.Silence
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.r.aud.Failed():
			return &EndError{Reason: "the audit log failed: " + errString(s.r.aud.Err())}
		case <-t.C:
			now := s.r.cfg.Now()
			if now.Sub(time.Unix(0, s.engSeen.Load())) > silence {
				return &EndError{Reason: "the engineer's node fell silent for " + silence.String()}
			}
			if now.Sub(time.Unix(0, s.prodSeen.Load())) > silence {
				return &EndError{Reason: "production fell silent for " + silence.String()}
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// tickCheck is how often writers check whether a leg needs a tick.
const tickCheck = 250 * time.Millisecond

// tickRate learns how often a peer ticks us, so that each leg is ticked at
// its peer's own rate: a peer with a short net_ticktime expects input that
// often (docs/wire.md#ticks).
type tickRate struct{ nanos atomic.Int64 }

const defaultTick = 15 * time.Second // net_ticktime 60 s / 4

func (r *tickRate) interval() time.Duration {
	if v := r.nanos.Load(); v > 0 {
		return time.Duration(v)
	}
	return defaultTick
}

func (r *tickRate) observe(now time.Time, prevNanos int64, isTick bool) {
	if !isTick || prevNanos == 0 {
		return
	}
	gap := now.Sub(time.Unix(0, prevNanos))
	if gap < 500*time.Millisecond {
		return
	}
	if gap < r.interval() {
		r.nanos.Store(int64(gap))
	}
}

// outQueue buffers production→engineer frames for the engineer writer,
// up to a byte cap.
type outQueue struct {
	mu       sync.Mutex
	frames   [][]byte
	bytes    int // queued
	inflight int // taken by the writer, not yet written
	max      int
	closed   bool
	ready    chan struct{}
	// total is the relay-wide count of held bytes (queued and in
	// flight), nil when none is kept; over is called when a push takes it
	// past the budget.
	total *atomic.Int64
	over  func()
	limit int64
}

func (q *outQueue) init(max int) {
	q.max = max
	q.ready = make(chan struct{}, 1)
}

// held is what the queue holds, queued and in flight.
func (q *outQueue) held() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes + q.inflight
}

var errTooSlow = errors.New("the engineer's node reads too slowly")

// detachFrame is the size from which production frames are queued without
// a copy.
const detachFrame = 64 << 10

// push queues one frame, given as one or more pieces written in order.
func (q *outQueue) push(pieces ...[]byte) error {
	n := 0
	for _, p := range pieces {
		n += len(p)
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return net.ErrClosed
	}
	if q.bytes+n > q.max {
		err := fmt.Errorf("%w: %s bytes from production are waiting, over the %s-byte cap", errTooSlow, strconv.Itoa(q.bytes+n), strconv.Itoa(q.max))
		q.mu.Unlock() // the message reads the fields take() resets: build it first
		return err
	}
	q.frames = append(q.frames, pieces...)
	q.bytes += n
	q.mu.Unlock()
	if q.total != nil && q.total.Add(int64(n)) > q.limit && q.over != nil {
		q.over()
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return nil
}

// take hands the queued frames to the writer, which calls written once
// they are on the wire.
func (q *outQueue) take() ([][]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.frames
	q.frames = nil
	q.inflight += q.bytes
	q.bytes = 0
	return f, q.closed
}

// written releases what take handed out.
func (q *outQueue) written() {
	q.mu.Lock()
	n := q.inflight
	q.inflight = 0
	q.mu.Unlock()
	if q.total != nil {
		q.total.Add(-int64(n))
	}
}

func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	n := q.bytes + q.inflight
	q.frames, q.bytes, q.inflight = nil, 0, 0
	q.mu.Unlock()
	if q.total != nil {
		q.total.Add(-int64(n))
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// atomLearner feeds production's atoms to the target's AtomSet. Large
// frames repeat a few atoms over and over (field names, the node name), so
// it remembers the last few it passed on and skips the set's map for them.
type atomLearner struct {
	set    *policy.AtomSet
	recent [16]string
	next   int
}

func (l *atomLearner) learn(b []byte) {
	for i := range l.recent {
		if l.recent[i] == string(b) {
			return
		}
	}
	l.set.AddBytes(b)
	l.recent[l.next] = string(b)
	l.next = (l.next + 1) % len(l.recent)
}
