package vaulttest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/cookies"
)

// Two replicas watch the list; an operator revokes a user. The time from
// Revoke returning to the last replica seeing it is measured.
func TestRevocationWatchReachesReplicas(t *testing.T) {
	tv := startVault(t)
	operator := openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
		Auth: tv.appRole(t, "operator", "beamgate-gateway", time.Hour, 2*time.Hour)})
	var replicas []*cookies.VaultStore
	for i := range 2 {
		replicas = append(replicas, openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
			Auth: tv.appRole(t, fmt.Sprintf("replica%d", i), "beamgate-reader", time.Hour, 2*time.Hour)}))
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()

	type seen struct {
		replica int
		at      time.Time
		users   []string
	}
	events := make(chan seen, 16)
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Revocations().Watch(ctx, 0, func(s cookies.Snapshot) {
				events <- seen{i, time.Now(), s.RevokedUsers()}
			})
		}()
	}
	defer wg.Wait()
	defer cancel()
	for range replicas { // first snapshot: an empty list
		select {
		case e := <-events:
			if len(e.users) != 0 {
				t.Fatalf("initial snapshot names %v", e.users)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no initial snapshot")
		}
	}

	if err := operator.Revocations().Revoke(ctx, cookies.Revocation{User: "mallory", Reason: "left the company",
		Actor: "ops"}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	returned := time.Now()
	var worst time.Duration
	got := map[int]bool{}
	for len(got) < len(replicas) {
		select {
		case e := <-events:
			if strings.Join(e.users, ",") != "mallory" {
				t.Fatalf("replica %d saw %v", e.replica, e.users)
			}
			got[e.replica] = true
			worst = max(worst, e.at.Sub(returned))
		case <-time.After(10 * time.Second):
			t.Fatal("a replica never saw the revocation")
		}
	}
	t.Logf("revocation reached both replicas %d ms after Revoke returned (poll interval %s)",
		worst.Milliseconds(), cookies.DefaultWatchInterval)

	snap, err := replicas[0].Revocations().List(ctx)
	if err != nil || !snap.Revoked("mallory", "", "", 0) || snap.Revoked("alice", "", "", 0) {
		t.Errorf("List: %+v, %v", snap, err)
	}
	// A read-only replica cannot revoke.
	if err := replicas[0].Revocations().Revoke(ctx, cookies.Revocation{User: "x"}); err == nil {
		t.Error("reader policy could write the revocation list")
	}
}

// Concurrent revocations all land: each Revoke retries on check-and-set
// refusals.
func TestRevokeConcurrentCAS(t *testing.T) {
	tv := startVault(t)
	var stores []*cookies.VaultStore
	for i := range 3 {
		stores = append(stores, openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
			Auth: tv.appRole(t, fmt.Sprintf("op%d", i), "beamgate-gateway", time.Hour, 2*time.Hour)}))
	}
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 8 {
				errs <- s.Revocations().Revoke(ctx, cookies.Revocation{
					KeyID: fmt.Sprintf("key-%d-%d", i, j), Serial: 1<<63 + uint64(i*100+j),
					Fingerprint: fmt.Sprintf("SHA256:fp%d%d", i, j), Reason: "test", Actor: "ops"})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Revoke: %v", err)
		}
	}
	snap, err := stores[0].Revocations().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Entries) != 24 {
		t.Errorf("%d entries, want 24", len(snap.Entries))
	}
	if !snap.Revoked("", "", "", 1<<63+205) || !snap.Revoked("", "SHA256:fp17", "", 0) || !snap.Revoked("", "", "key-0-0", 0) {
		t.Error("an entry is missing or its serial lost precision")
	}
}
