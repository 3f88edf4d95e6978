package cookies

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// CookieHealth asks for every cached cluster's cookie as a new session
// would (from the cache while it is younger than cache_ttl, else from
// Vault, serving a stale one while Vault is unreachable up to the stale
// limit), and returns the age of the oldest confirmed cookie with an error
// naming each cluster whose new sessions would be refused now. Every
// configured cluster is cached from the start (the gateway reads them all
// once); with none cached it returns 0 and nil.
//
// It may wait for Vault, bounded by ctx and the store's timeout: call it
// from a background probe, not from a request handler.
func (s *VaultStore) CookieHealth(ctx context.Context) (oldest time.Duration, err error) {
	s.mu.Lock()
	clusters := make([]string, 0, len(s.cache))
	for cl := range s.cache {
		clusters = append(clusters, cl)
	}
	s.mu.Unlock()
	slices.Sort(clusters)
	var errs []error
	for _, cl := range clusters {
		if _, err := s.entry(ctx, cl, false); err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("cookies: cluster %q: Vault did not answer in time: %w", cl, err)
			}
			errs = append(errs, err)
		}
		s.mu.Lock()
		e := s.cache[cl]
		s.mu.Unlock()
		if e == nil { // forgotten meanwhile (a rotation)
			continue
		}
		e.mu.Lock()
		if e.cookie != "" {
			oldest = max(oldest, s.now().Sub(e.fetched))
		}
		e.mu.Unlock()
	}
	return oldest, errors.Join(errs...)
}

// TokenHealth looks up the store's own Vault token (bounded by ctx and the
// store's timeout) and returns an error when Vault answers that it is not
// valid: its renewal failed and the login that follows has not succeeded
// yet, or it was revoked. An unreachable Vault returns nil: that says
// nothing of the token, and CookieHealth reports it once sessions would
// be refused. Like CookieHealth it makes a Vault request: call it from a
// background probe.
func (s *VaultStore) TokenHealth(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout*time.Duration(s.cfg.MaxRetries+1))
	defer cancel()
	if _, err := s.client.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		err = s.vaultErr("token lookup", err)
		if errors.Is(err, ErrVaultUnreachable) {
			return nil
		}
		return fmt.Errorf("%w (the token's renewal failed or it was revoked; beamgate logs in again by itself: see its log for the login error)", err)
	}
	return nil
}
