package gateway

import (
	"context"
	"maps"
	"strings"
	"sync"
	"time"

	"beamgate/audit"
	"beamgate/gateway/config"
)

// Bounds of what Recent keeps.
const (
	recentPerUser = 50    // refusals kept per user
	recentUsers   = 10000 // users kept; the least recently seen goes first
)

// Recent is an audit.Sink in front of the real one that keeps, per user,
// what the gateway saw of that engineer's attempts: their refusals and
// failed handshakes, and the last step each kind of attempt reached
// (registration, epmd lookup, session). `ssh bastion why` and `check`
// read it, so an engineer sees reasons that otherwise exist only in the
// audit log. Every record passes through to the next sink unchanged; a
// copy is kept only once the next sink took it. It is bounded and held in
// memory: a restart, or another replica, starts empty.
type Recent struct {
	next audit.Sink
	now  func() time.Time

	mu    sync.Mutex
	users map[string]*userRecent
}

// userRecent is one user's part of Recent.
type userRecent struct {
	seen     time.Time
	refusals []audit.Record // oldest first, at most recentPerUser

	// The last record of each step of a connection attempt.
	home    *audit.Record // ALIVE2 on the home face (allowed or refused)
	lookup  *audit.Record // PORT_PLEASE2 on a host face
	session *audit.Record // session_start or session_refused
}

// NewRecent wraps next; now is the clock (nil: time.Now).
func NewRecent(next audit.Sink, now func() time.Time) *Recent {
	if now == nil {
		now = time.Now
	}
	return &Recent{next: next, now: now, users: map[string]*userRecent{}}
}

var _ audit.Sink = (*Recent)(nil)

// Append implements audit.Sink.
func (r *Recent) Append(ctx context.Context, rec *audit.Record) error {
	if err := r.next.Append(ctx, rec); err != nil {
		return err
	}
	if rec.User == "" || !r.keeps(rec) {
		return nil
	}
	c := *rec
	c.Detail = maps.Clone(rec.Detail)
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.user(rec.User)
	switch {
	case c.Event == audit.EventEpmd && c.Op == "ALIVE2_REQ":
		u.home = &c
	case c.Event == audit.EventEpmd && c.Op == "PORT_PLEASE2_REQ" && !strings.HasPrefix(c.Dest, config.HomeHost+":"):
		u.lookup = &c
	case c.Event == audit.EventSessionStart || c.Event == audit.EventSessionRefused:
		u.session = &c
	}
	if c.Decision == audit.DecisionDeny {
		if len(u.refusals) >= recentPerUser {
			u.refusals = append(u.refusals[:0], u.refusals[1:]...)
		}
		u.refusals = append(u.refusals, c)
	}
	return nil
}

// keeps reports whether rec concerns an engineer's attempt: a refusal, a
// registration or lookup, a session start. Allowed messages, the bulk of
// the log, are not kept.
func (r *Recent) keeps(rec *audit.Record) bool {
	switch {
	case strings.HasPrefix(rec.Rule, "remote-shell."):
		return false // the stand-in's own traffic: not the engineer's doing
	case rec.Decision == audit.DecisionDeny:
		return true
	case rec.Event == audit.EventEpmd, rec.Event == audit.EventSessionStart, rec.Event == audit.EventSessionRefused:
		return true
	}
	return false
}

// user returns (creating) user's entry; r.mu is held.
func (r *Recent) user(name string) *userRecent {
	u := r.users[name]
	if u == nil {
		if len(r.users) >= recentUsers {
			r.evictOldest()
		}
		u = &userRecent{}
		r.users[name] = u
	}
	u.seen = r.now()
	return u
}

func (r *Recent) evictOldest() {
	var oldest string
	var at time.Time
	for name, u := range r.users {
		if oldest == "" || u.seen.Before(at) {
			oldest, at = name, u.seen
		}
	}
	delete(r.users, oldest)
}

// RecentView is a copy of one user's part of Recent.
type RecentView struct {
	Refusals              []audit.Record // newest first
	Home, Lookup, Session *audit.Record
}

// Of returns a copy of what Recent holds for user.
func (r *Recent) Of(user string) RecentView {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.users[user]
	if u == nil {
		return RecentView{}
	}
	v := RecentView{Refusals: make([]audit.Record, 0, len(u.refusals))}
	for i := len(u.refusals) - 1; i >= 0; i-- {
		c := u.refusals[i]
		c.Detail = maps.Clone(c.Detail)
		v.Refusals = append(v.Refusals, c)
	}
	cp := func(p *audit.Record) *audit.Record {
		if p == nil {
			return nil
		}
		c := *p
		c.Detail = maps.Clone(p.Detail)
		return &c
	}
	v.Home, v.Lookup, v.Session = cp(u.home), cp(u.lookup), cp(u.session)
	return v
}

// Failed implements audit.Sink.
func (r *Recent) Failed() <-chan struct{} { return r.next.Failed() }

// Err implements audit.Sink.
func (r *Recent) Err() error { return r.next.Err() }
