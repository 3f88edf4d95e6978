package ops

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"beamgate/cookies"
)

// How often the Vault probes run. The cookies probe mostly reads the
// store's cache (Vault is asked once per cluster per cache_ttl, as a
// session would); the token probe is one token lookup.
const (
	cookieProbeEvery = 5 * time.Second
	tokenProbeEvery  = 30 * time.Second
)

// RevocationLister is the revocation list the front door polls
// (gateway.RevocationSource, *cookies.Revocations).
type RevocationLister interface {
	List(ctx context.Context) (cookies.Snapshot, error)
}

// TrackRevocations returns src with a "revocations" check and the
// beamgate_revocation_list_age_seconds gauge on it: every successful List
// (the front door polls it) confirms the list; once it has gone
// unconfirmed past stale (zero: cookies.DefaultStaleLimit, as the front
// door uses), the check fails, as the front door then refuses logins.
// Pass what it returns to the front door in src's place.
func (s *Server) TrackRevocations(src RevocationLister, stale time.Duration) RevocationLister {
	if stale <= 0 {
		stale = cookies.DefaultStaleLimit
	}
	t := &revocationTracker{src: src, now: time.Now}
	s.AddCheck(Check{Name: "revocations", Err: func() error {
		age, ok := t.age()
		switch {
		case !ok:
			return fmt.Errorf("the revocation list has not been read from Vault yet")
		case age > stale:
			return fmt.Errorf("the revocation list was last read from Vault %s ago, past the stale limit of %s; new logins are refused until Vault answers", age.Round(time.Second), stale)
		}
		return nil
	}})
	s.metrics.SetRevocationAge(t.age)
	return t
}

// revocationTracker notes when its source was last read successfully.
type revocationTracker struct {
	src RevocationLister
	now func() time.Time
	ok  atomic.Int64 // UnixNano of the last successful List; 0: never
}

func (t *revocationTracker) List(ctx context.Context) (cookies.Snapshot, error) {
	snap, err := t.src.List(ctx)
	if err == nil {
		t.ok.Store(t.now().UnixNano())
	}
	return snap, err
}

func (t *revocationTracker) age() (time.Duration, bool) {
	n := t.ok.Load()
	if n == 0 {
		return 0, false
	}
	return t.now().Sub(time.Unix(0, n)), true
}

// VaultHealth is what the Vault probes ask (*cookies.VaultStore).
type VaultHealth interface {
	CookieHealth(ctx context.Context) (oldest time.Duration, err error)
	TokenHealth(ctx context.Context) error
}

// WatchVault registers the "cookies" probe (a cluster whose new sessions
// would be refused: Vault unreachable past the stale limit, or the cookie
// gone), which also feeds beamgate_cookie_age_seconds, and the
// "vault-token" probe (Vault refuses the gateway's token). timeout bounds
// one run of each.
func (s *Server) WatchVault(v VaultHealth, timeout time.Duration) {
	var age atomic.Int64 // nanoseconds; -1: unknown
	age.Store(-1)
	s.AddProbe("cookies", cookieProbeEvery, timeout, func(ctx context.Context) error {
		oldest, err := v.CookieHealth(ctx)
		age.Store(int64(oldest))
		return err
	})
	s.metrics.SetCookieAge(func() (time.Duration, bool) {
		n := age.Load()
		return time.Duration(n), n >= 0
	})
	s.AddProbe("vault-token", tokenProbeEvery, timeout, v.TokenHealth)
}
