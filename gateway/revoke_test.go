package gateway

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/cookies"
	"beamgate/internal/beamtest"

	gossh "golang.org/x/crypto/ssh"
)

// fakeRevocations is a revocation list the test edits; err makes reads
// fail as if Vault were unreachable.
type fakeRevocations struct {
	mu   sync.Mutex
	snap cookies.Snapshot
	err  error
}

func (f *fakeRevocations) List(context.Context) (cookies.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, f.err
}

func (f *fakeRevocations) revoke(r cookies.Revocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = cookies.Snapshot{Version: f.snap.Version + 1, Entries: append(append([]cookies.Revocation(nil), f.snap.Entries...), r)}
}

func (f *fakeRevocations) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func fingerprintOf(t *testing.T, key string) string {
	t.Helper()
	pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(beamtest.PublicKey(t, key)))
	if err != nil {
		t.Fatal(err)
	}
	return gossh.FingerprintSHA256(pk)
}

// startForwardProc starts ssh -N -L for user and returns a channel closed
// when ssh exits.
func (e *gatewayEnv) startForwardProc(user, key string) <-chan struct{} {
	e.t.Helper()
	lp := beamtest.FreePort(e.t)
	cmd := exec.Command("ssh", e.sshArgs(user, key, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("%d:prod-01:4369", lp))...)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e.t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	// Wait until the connection is authenticated (the audit has its login).
	return exited
}

// TestRevocationsAtLoginAndLive: a revoked key is refused at login and its
// live connection is cut, though still configured; other users are not
// affected; when the list cannot be read past the stale limit new logins
// are refused with a clear reason while live connections stay.
func TestRevocationsAtLoginAndLive(t *testing.T) {
	rev := &fakeRevocations{snap: cookies.Snapshot{Version: 1}}
	e := startGateway(t, envOptions{revocations: rev, revStale: 2 * time.Second})
	if r := e.ssh("alice", e.aliceK, nil, "cookie"); r.code != 0 {
		t.Fatalf("alice before revocation: %d %s", r.code, r.stderr)
	}
	aliceLive := e.startForwardProc("alice", e.aliceK)
	bobLive := e.startForwardProc("bob", e.bobK)
	e.waitAudit(`"user":"bob","key_id"`)
	time.Sleep(200 * time.Millisecond) // both authenticated and registered

	// Revoke alice's key (not her name): her live connection is cut.
	rev.revoke(cookies.Revocation{ID: "r1", Fingerprint: fingerprintOf(t, e.aliceK), Reason: "laptop stolen", Actor: "ops"})
	select {
	case <-aliceLive:
	case <-time.After(10 * time.Second):
		t.Fatal("alice's live connection survived the revocation of her key")
	}
	e.waitAudit(`"event":"offboard"`, `revoked: laptop stolen`)
	if r := e.ssh("alice", e.aliceK, nil, "cookie"); r.code != 255 || r.stdout != "" {
		t.Errorf("revoked key logged in: %d %q", r.code, r.stdout)
	}
	e.waitAudit(`"decision":"deny","reason":"revoked: the user, key or certificate is on the revocation list (laptop stolen)"`)
	select {
	case <-bobLive:
		t.Fatal("bob's connection was cut by alice's revocation")
	default:
	}
	if r := e.ssh("bob", e.bobK, nil, "cookie"); r.code != 0 {
		t.Errorf("bob after alice's revocation: %d %s", r.code, r.stderr)
	}

	// Revoking by user name.
	rev.revoke(cookies.Revocation{ID: "r2", User: "bob", Reason: "left", Actor: "ops"})
	select {
	case <-bobLive:
	case <-time.After(10 * time.Second):
		t.Fatal("bob's live connection survived his revocation")
	}
	rev.mu.Lock()
	rev.snap = cookies.Snapshot{Version: 10} // list emptied by hand: both may log in again
	rev.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for e.ssh("bob", e.bobK, nil, "cookie").code != 0 {
		if time.Now().After(deadline) {
			t.Fatal("bob still refused after the list was emptied")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Vault unreachable: the stale limit is tested in virtual time
	// (TestRevocationStaleLimit); here, live connections survive it.
	bobLive = e.startForwardProc("bob", e.bobK)
	time.Sleep(200 * time.Millisecond)
	rev.setErr(errors.New("connection refused"))
	time.Sleep(3 * time.Second) // past this test's 2 s stale limit
	select {
	case <-bobLive:
		t.Fatal("a live connection was cut because Vault was unreachable")
	default:
	}
	if strings.Contains(e.auditLog(), prodCookie) {
		t.Error("audit log contains the production cookie")
	}
}
