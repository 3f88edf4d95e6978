package ops

import (
	"context"
	"sync"
	"time"

	"beamgate/audit"
)

// maxTracked bounds the connections and the sessions MetricsSink follows
// (for the active gauges and the session durations); past it new ones go
// uncounted in the gauges rather than grow the maps.
const maxTracked = 1 << 16

// MetricsSink is an audit.Sink in front of the real one (below the
// gateway's Recent) that derives metrics from the records passing
// through: it times each append, then counts the record. Every record
// passes to the next sink unchanged.
//
// What it counts: logins (an allow opens a connection, keyed by its source
// address; the logout, or the refusal a failed handshake writes, closes
// it) and refused logins by reason; relay sessions started, refused and
// ended (with their duration and bytes); and the decision and rule of
// every message and view record. A record that allowed something whose
// append failed is not counted (it did not happen); refusals and facts
// (a logout, a session end) are counted either way.
//
// The per-message cost is two clock reads, a histogram observation, one
// map lookup of the rule and an atomic add.
type MetricsSink struct {
	next audit.Sink
	m    *Metrics
	now  func() time.Time

	mu       sync.Mutex
	conns    map[string]struct{}  // source address of each authenticated connection
	sessions map[string]time.Time // relay session id -> when it started
}

var _ audit.Sink = (*MetricsSink)(nil)

// NewMetricsSink wraps next, counting into m.
func NewMetricsSink(next audit.Sink, m *Metrics) *MetricsSink {
	return &MetricsSink{next: next, m: m, now: time.Now, conns: map[string]struct{}{}, sessions: map[string]time.Time{}}
}

// Append implements audit.Sink.
func (s *MetricsSink) Append(ctx context.Context, rec *audit.Record) error {
	start := time.Now()
	err := s.next.Append(ctx, rec)
	s.m.appendSecs.Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.auditFailures.Inc()
		if rec.Decision == audit.DecisionAllow || rec.Decision == audit.DecisionAllowWrite {
			return err
		}
	}
	s.count(rec)
	return err
}

// count updates the metrics from one record.
func (s *MetricsSink) count(rec *audit.Record) {
	switch rec.Event {
	case audit.EventMessage, audit.EventView:
		s.m.decision(ruleOf(rec.Rule), rec.Decision)
	case audit.EventLogin:
		if rec.Decision == audit.DecisionAllow {
			s.connOpened(rec.SourceAddr)
			return
		}
		s.m.authBy[authIndex(rec.Reason)].Inc()
		s.connClosed(rec.SourceAddr) // a failed handshake after an allow
	case audit.EventLogout:
		s.connClosed(rec.SourceAddr)
	case audit.EventSessionStart:
		s.m.sessionsOK.Inc()
		s.mu.Lock()
		if _, ok := s.sessions[rec.Session]; !ok && len(s.sessions) < maxTracked {
			s.sessions[rec.Session] = s.now()
		}
		s.m.sessionsActive.Set(float64(len(s.sessions)))
		s.mu.Unlock()
	case audit.EventSessionRefused:
		s.m.sessionsNo.Inc()
	case audit.EventSessionEnd:
		s.mu.Lock()
		began, ok := s.sessions[rec.Session]
		if ok {
			delete(s.sessions, rec.Session)
		}
		s.m.sessionsActive.Set(float64(len(s.sessions)))
		s.mu.Unlock()
		if ok {
			s.m.sessionSecs.Observe(s.now().Sub(began).Seconds())
		}
	}
}

func (s *MetricsSink) connOpened(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) < maxTracked {
		s.conns[addr] = struct{}{}
	}
	s.m.connsActive.Set(float64(len(s.conns)))
}

func (s *MetricsSink) connClosed(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[addr]; !ok {
		return
	}
	delete(s.conns, addr)
	s.m.connsActive.Set(float64(len(s.conns)))
}

// Failed implements audit.Sink.
func (s *MetricsSink) Failed() <-chan struct{} { return s.next.Failed() }

// Err implements audit.Sink.
func (s *MetricsSink) Err() error { return s.next.Err() }
