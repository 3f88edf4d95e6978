package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"beamgate/audit"
	"beamgate/cookies"

	"go.uber.org/zap"
)

// RevocationSource is the revocation list the front door enforces:
// *cookies.Revocations, shared by every replica through Vault.
type RevocationSource interface {
	List(ctx context.Context) (cookies.Snapshot, error)
}

// Login refusals from the revocation list.
var (
	errRevoked = errors.New("revoked: the user, key or certificate is on the revocation list")
	// errRevocationsStale is the fail-closed refusal while the revocation
	// list cannot be confirmed.
	errRevocationsStale = errors.New("the revocation list could not be read from Vault for longer than the stale limit; new logins are refused until Vault answers (live sessions continue)")
)

// revocationState is the front door's view of the revocation list.
// Guarded by Server.mu together with Server.live, so a login is either
// checked against a snapshot or cut by the watcher that installs the next.
type revocationState struct {
	on    bool
	snap  cookies.Snapshot
	ok    time.Time // last successful read
	stale time.Duration
}

// startRevocations reads the list once (an error fails the start) and
// then polls it every interval until ctx ends.
func (s *Server) startRevocations(ctx context.Context, src RevocationSource, interval, stale time.Duration) error {
	if interval <= 0 {
		interval = cookies.DefaultWatchInterval
	}
	if stale <= 0 {
		stale = cookies.DefaultStaleLimit
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	snap, err := src.List(rctx)
	cancel()
	if err != nil {
		return fmt.Errorf("gateway: reading the revocation list: %w", err)
	}
	s.mu.Lock()
	s.rev = revocationState{on: true, snap: snap, ok: s.now(), stale: stale}
	s.mu.Unlock()
	s.log.Info("revocation list loaded", zap.Int("version", snap.Version), zap.Int("entries", len(snap.Entries)))
	go s.watchRevocations(ctx, src, interval)
	return nil
}

// watchRevocations polls the list. Unlike cookies.Revocations.Watch it
// also records when the list was last read, so logins fail closed once it
// has been unconfirmed past the stale limit.
func (s *Server) watchRevocations(ctx context.Context, src RevocationSource, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap, err := src.List(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				s.log.Warn("reading the revocation list; keeping the last one", zap.Error(err))
			}
			failing = true
			continue
		}
		if failing {
			s.log.Info("revocation list readable again")
			failing = false
		}
		s.applyRevocations(snap)
	}
}

// applyRevocations installs snap and cuts every live connection it
// revokes, and the relayed sessions of every revoked user.
func (s *Server) applyRevocations(snap cookies.Snapshot) {
	s.mu.Lock()
	changed := snap.Version != s.rev.snap.Version
	s.rev.snap, s.rev.ok = snap, s.now()
	var cut []*connState
	users := map[string]string{} // user -> reason
	if changed {
		for c, id := range s.live {
			if _, ok := revokedBy(snap, id); ok {
				cut = append(cut, c)
				users[id.User] = revocationReason(snap, id)
			}
		}
	}
	s.mu.Unlock()
	if !changed {
		return
	}
	s.log.Info("revocation list changed", zap.Int("version", snap.Version), zap.Int("added", len(snap.Added)), zap.Int("cutting", len(cut)))
	for user, reason := range users {
		n := s.opts.Relay.CloseUser(user, "revoked: "+reason)
		s.log.Info("revoked user's relayed sessions ended", zap.String("user", user), zap.Int("sessions", n))
	}
	for _, c := range cut {
		if sc := serverConnOf(c.ctx); sc != nil {
			id, _ := identityOf(sc)
			reason := "revoked"
			if id != nil {
				reason = "revoked: " + revocationReason(snap, id)
			}
			c.auditConn(sc, audit.EventOffboard, audit.DecisionDeny, reason)
		}
		c.netConn.Close()
	}
}

// certKeyID is the certificate key id of id, "" for plain keys (whose
// KeyID field holds the fingerprint).
func certKeyID(id *Identity) string {
	if id.Cert {
		return id.KeyID
	}
	return ""
}

// revokedBy returns the newest entry of snap that revokes id: by user
// name, key fingerprint (a certificate's key too), certificate key id or
// serial.
func revokedBy(snap cookies.Snapshot, id *Identity) (cookies.Revocation, bool) {
	keyID := certKeyID(id)
	for i := len(snap.Entries) - 1; i >= 0; i-- {
		e := snap.Entries[i]
		if (e.User != "" && e.User == id.User) || (e.Fingerprint != "" && e.Fingerprint == id.Fingerprint) ||
			(e.KeyID != "" && e.KeyID == keyID) || (e.Serial != 0 && e.Serial == id.CertSerial) {
			return e, true
		}
	}
	return cookies.Revocation{}, false
}

// revocationReason is the (bounded) reason of the entry revoking id.
func revocationReason(snap cookies.Snapshot, id *Identity) string {
	if e, ok := revokedBy(snap, id); ok && e.Reason != "" {
		return truncate(e.Reason, 200)
	}
	return "on the revocation list"
}

// admitLocked checks a verified login against the revocation list and
// registers the connection as live. s.mu is held.
func (s *Server) admitLocked(c *connState, id *Identity) error {
	if s.rev.on {
		if age := s.now().Sub(s.rev.ok); age > s.rev.stale {
			return errRevocationsStale
		}
		if _, ok := revokedBy(s.rev.snap, id); ok {
			return fmt.Errorf("%w (%s)", errRevoked, revocationReason(s.rev.snap, id))
		}
	}
	s.live[c] = id
	return nil
}
