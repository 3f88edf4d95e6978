package vaulttest

import (
	"context"
	"strings"
	"testing"
	"time"

	"beamgate/cookies"
)

// TestVaultHealth: against a real Vault, CookieHealth passes with the
// oldest cookie's age while Vault answers, keeps passing while Vault is
// unreachable within the stale limit, and fails naming the cluster past
// it (as new sessions are then refused); TokenHealth passes with a valid
// token, says nothing while Vault is unreachable, and fails once Vault
// refuses the token (revoked).
func TestVaultHealth(t *testing.T) {
	tv := startVault(t)
	tv.putCookie(t, "prismatic", "HEALTHCOOKIE1")
	tv.putCookie(t, "other", "HEALTHCOOKIE2")
	px := tv.proxy(t)
	const staleLimit = 3 * time.Second
	s := openStore(t, cookies.VaultConfig{Address: px.URL(), CAFile: tv.caFile, CacheTTL: 100 * time.Millisecond,
		StaleLimit: staleLimit, Timeout: 2 * time.Second,
		Auth: tv.appRole(t, "gw-health", "beamgate-reader", time.Hour, 2*time.Hour)})
	ctx := ctxT(t)
	probe := func() (time.Duration, error) {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return s.CookieHealth(pctx)
	}
	if age, err := probe(); err != nil || age != 0 {
		t.Fatalf("nothing cached yet: %v %v", age, err)
	}
	for _, cl := range []string{"prismatic", "other"} {
		if _, err := s.ProductionCookie(ctx, cl, false); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // past cache_ttl: the probe reads Vault again
	if age, err := probe(); err != nil || age > time.Second {
		t.Fatalf("Vault answering: age %v, %v", age, err)
	}
	if err := s.TokenHealth(ctx); err != nil {
		t.Fatalf("TokenHealth with a valid token: %v", err)
	}

	px.down.Store(true)
	confirmed := time.Now()
	if age, err := probe(); err != nil || age > staleLimit {
		t.Errorf("Vault down, within the stale limit: age %v, %v", age, err)
	}
	if err := s.TokenHealth(ctx); err != nil {
		t.Errorf("TokenHealth while Vault is unreachable: %v", err)
	}
	var err error
	var age time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for {
		age, err = probe()
		if err != nil && strings.Contains(err.Error(), `cluster "other"`) || time.Now().After(deadline) {
			break // both clusters past the limit ("other" was read last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), `cluster "other"`) || !strings.Contains(err.Error(), `cluster "prismatic"`) ||
		!strings.Contains(err.Error(), "stale limit") || age < staleLimit {
		t.Fatalf("past the stale limit: age %v, %v", age, err)
	}
	if time.Since(confirmed) < staleLimit-time.Second {
		t.Errorf("unhealthy %v after Vault went down, before the stale limit", time.Since(confirmed))
	}
	t.Logf("CookieHealth past the stale limit: %v", err)

	px.down.Store(false)
	if _, err := probe(); err != nil {
		t.Errorf("Vault back: %v", err)
	}
	// The store's token revoked: Vault refuses it.
	if err := tv.root.Auth().Token().RevokeTree(s.Client().Token()); err != nil {
		t.Fatal(err)
	}
	if err := s.TokenHealth(ctx); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("TokenHealth with a revoked token: %v", err)
	} else {
		t.Logf("TokenHealth with a revoked token: %v", err)
	}
}
