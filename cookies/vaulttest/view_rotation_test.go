package vaulttest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"beamgate/gateway/rotate"
	"beamgate/internal/beamtest"
)

// TestViewsMidRotation: a cookie rotation crashed half way (prod1 runs the
// new cookie, prod2 still the old one, Vault holds the new one as its
// newest version). A text view of either node works through the real
// beamgate binary: the views try production cookies in the relay's order
// (cached, fresh, then the previous version), so the node the rotation has
// not reached yet is still reachable. Before the views shared that order
// with the relay, a view of prod2 failed here.
func TestViewsMidRotation(t *testing.T) {
	beamtest.RequireErl(t)
	tv := startVault(t)
	tv.putCookie(t, "prismatic", oldCookie)
	c := startCluster(t)
	s, _ := rotateStore(t, tv)
	crash := errors.New("simulated crash")
	if _, err := rotate.Run(ctxT(t), rotate.Config{Store: s, Cluster: "prismatic", Nodes: c.rotate,
		ClientNode: "beamgate_rot@127.0.0.5", Audit: tempAudit(t),
		AfterSetCookie: func(string) error { return crash }}); !errors.Is(err, crash) {
		t.Fatalf("half rotation = %v, want the crash", err)
	}
	newCookie, ver := currentCookie(t, tv)
	if ver != 2 {
		t.Fatalf("vault version = %d, want 2", ver)
	}
	if err := c.dialWith(t, c.rotate[1], oldCookie); err != nil {
		t.Fatalf("prod2 should still run the old cookie: %v", err)
	}

	bin := beamtest.BuildBeamgate(t, t.TempDir())
	auth := tv.appRole(t, "gateway", "beamgate-gateway", time.Hour, 2*time.Hour)
	dir := t.TempDir()
	key := beamtest.NewSSHKey(t, dir, "alice")
	sshPort := beamtest.FreePort(t)
	cfg := filepath.Join(dir, "beamgate.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
host_key: ./state/host_key
audit:
  path: ./state/audit.jsonl
%sclusters:
  prismatic:
    nodes:
      - {name: %s, dial: "%s", gateway_port: 4370}
      - {name: %s, dial: "%s", gateway_port: 4371}
users:
  alice:
    keys: [%q]
    roles: [observer]
roles:
  observer:
    clusters: [prismatic]
    policy: readonly
    mode: enforce
`, sshPort, tv.cookiesYAML(auth),
		c.rotate[0].Name, c.rotate[0].Dial, c.rotate[1].Name, c.rotate[1].Dial, beamtest.PublicKey(t, key))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := startProc(t, bin, "serve", "--config", cfg)
	serve.waitPort(t, "127.0.0.1", sshPort)

	for _, n := range c.rotate {
		code, out := runCmd(t, "ssh", append(sshArgs(sshPort, key), "stats", n.Name)...)
		if code != 0 || !strings.Contains(out, "run queues") {
			t.Errorf("stats %s mid-rotation: exit %d\n%s\n%s", n.Name, code, out, serve.out.String())
		}
		for _, cookie := range []string{oldCookie, newCookie} {
			if strings.Contains(out, cookie) {
				t.Errorf("stats %s output contains a production cookie", n.Name)
			}
		}
	}
	if logs := serve.out.String(); strings.Contains(logs, oldCookie) || strings.Contains(logs, newCookie) {
		t.Error("the gateway's log contains a production cookie")
	}
}
