package vaulttest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/cookies"
)

// TestGatewaySecretInVault: replicas starting together on an empty Vault
// agree on one gateway secret (so on every engineer's cookie); a reader
// replica sees it but may neither create nor rotate it; a rotation
// reaches a watching replica, which then accepts both the old and the new
// cookie until the previous secret's window ends.
func TestGatewaySecretInVault(t *testing.T) {
	tv := startVault(t)
	ctx := ctxT(t)
	reader := openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
		Auth: tv.appRole(t, "reader", "beamgate-reader", time.Hour, 2*time.Hour)})
	if _, err := reader.GatewaySecrets(ctx); err == nil || !strings.Contains(err.Error(), "rotate-gateway-secret") {
		t.Errorf("a reader on an empty Vault: err = %v, want one naming beamgate cookie rotate-gateway-secret", err)
	}

	var gws []*cookies.VaultStore
	for i := range 4 {
		gws = append(gws, openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
			Auth: tv.appRole(t, fmt.Sprintf("gw%d", i), "beamgate-gateway", time.Hour, 2*time.Hour)}))
	}
	got := make([]*cookies.Secrets, len(gws))
	errs := make([]error, len(gws))
	var wg sync.WaitGroup
	for i, s := range gws {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], errs[i] = s.GatewaySecrets(ctx) }()
	}
	wg.Wait()
	for i := range gws {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i].Current, got[0].Current) || got[i].Version != 1 {
			t.Fatalf("replicas starting together disagree: replica %d has version %d", i, got[i].Version)
		}
	}
	first, err := reader.GatewaySecrets(ctx)
	if err != nil || !bytes.Equal(first.Current, got[0].Current) {
		t.Fatalf("the reader after creation: %v", err)
	}
	if _, err := reader.RotateGatewaySecret(ctx, time.Hour, time.Now()); err == nil {
		t.Error("the reader policy rotated the gateway secret")
	}

	// A replica watching; an operator rotates.
	ring := cookies.NewKeyring(first)
	gw := cookies.Gateway{Keys: ring, Window: time.Hour}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go reader.WatchGatewaySecrets(wctx, ring, 100*time.Millisecond)
	now := time.Now()
	oldCookie := gw.Cookie("alice", now)
	rotated, err := gws[1].RotateGatewaySecret(ctx, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for ring.Load().Version != rotated.Version {
		if time.Since(t0) > 10*time.Second {
			t.Fatal("the watching replica never saw the rotation")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("rotation reached the watching replica in %v", time.Since(t0).Round(time.Millisecond))
	newCookie := gw.Cookie("alice", now)
	if newCookie == oldCookie {
		t.Fatal("the cookie did not change with the rotation")
	}
	if acc := gw.Accepted("alice", now); !slices.Contains(acc, oldCookie) || !slices.Contains(acc, newCookie) {
		t.Error("right after the rotation both the old and the new cookie must be accepted")
	}
	if slices.Contains(gw.Accepted("alice", now.Add(time.Hour+time.Second)), oldCookie) {
		t.Error("the old cookie is still accepted after its window")
	}
	// Concurrent rotations never lose the chain: each new secret keeps the
	// one before it as previous.
	for i := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = gws[i].RotateGatewaySecret(ctx, time.Hour, time.Now()) }()
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil {
			t.Errorf("concurrent rotation %d: %v", i, errs[i])
		}
	}
	last, err := reader.GatewaySecrets(ctx)
	if err != nil || last.Version != rotated.Version+3 {
		t.Fatalf("after 3 concurrent rotations: version %v, %v", last, err)
	}
	if last.Previous == nil || bytes.Equal(last.Previous, last.Current) {
		t.Error("the newest secret does not keep a distinct previous one")
	}
}
