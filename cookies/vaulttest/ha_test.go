package vaulttest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// haReplicaYAML is one replica's configuration. Both replicas share the
// host key (engineers' known_hosts see one gateway) and Vault; each has its
// own audit log and ops port. advertise is HAProxy's address, so the
// recipe a replica prints sends engineers back through HAProxy.
const haReplicaYAML = `listen: 127.0.0.1:%d
advertise: 127.0.0.1:%d
host_key: %s
audit:
  path: ./audit.jsonl
ops:
  listen: 127.0.0.1:%d
shutdown_grace: 2s
engineer_epmd_port: %d
%sclusters:
  prismatic:
    nodes:
      - {name: prismatic@prod-01, dial: "127.0.0.2:%d", gateway_port: %d}
users:
  alice:
    keys: [%q]
    roles: [observer]
roles:
  observer:
    clusters: [prismatic]
    policy: readonly
    mode: enforce
`

// haproxyCfg balances SSH over the replicas in TCP mode. Health comes from
// each replica's /readyz (a draining or broken replica leaves the pool),
// not from connecting to the SSH port, which would put a refused login in
// the audit log every 200 ms.
const haproxyCfg = `global
  maxconn 200
defaults
  mode tcp
  timeout connect 1s
  timeout client 1h
  timeout server 1h
  retries 3
  option redispatch
frontend ssh
  bind 127.0.0.1:%d
  default_backend gateways
backend gateways
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  server a 127.0.0.1:%d check port %d inter 200ms fall 1 rise 1
  server b 127.0.0.1:%d check port %d inter 200ms fall 1 rise 1
`

// TestReplicasBehindHAProxy runs two real beamgate replicas behind a real
// HAProxy, both on the real Vault core. An engineer follows the printed
// recipe through HAProxy and reaches production; the replica serving them
// is killed with SIGKILL; the same recipe line, run again, reaches the
// other replica with the same gateway cookie (the secret is Vault's, not a
// file per host). The killed replica comes back, the engineer holds a
// session on each replica, and `beamgate offboard` cuts both.
func TestReplicasBehindHAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds beamgate, starts Vault, HAProxy, BEAM nodes and OpenSSH")
	}
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t, "go")
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is not installed (Debian package haproxy; .ci/run installs it)")
	}
	bin := beamtest.BuildBeamgate(t, t.TempDir())
	tv := startVault(t)
	auth := tv.appRole(t, "gateway", "beamgate-gateway", time.Hour, 2*time.Hour)
	const prodCookie = "PRODCOOKIEFROMVAULTNEVERSHOWN"
	tv.putCookie(t, "prismatic", prodCookie)
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	prod := beamtest.StartProduction(t, beamtest.Options{Name: "prismatic@prod-01", Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd})

	dir := t.TempDir()
	key := beamtest.NewSSHKey(t, dir, "alice")
	hp := beamtest.FreePort(t)
	// prismatic is the only cluster: its recipe port is engineer_epmd_port,
	// its host address 127.77.1.1.
	ep := beamtest.FreePortOn(t, "127.0.0.1", "127.77.1.1", "127.0.0.5")
	gp := beamtest.FreePortOn(t, "127.77.1.1", "127.0.0.5")
	hostKey := filepath.Join(dir, "host_key")
	type replica struct {
		name             string
		dir, cfg         string
		sshPort, opsPort int
		serve            *proc
	}
	var reps [2]*replica
	for i, name := range []string{"a", "b"} {
		r := &replica{name: name, dir: filepath.Join(dir, name), sshPort: beamtest.FreePort(t), opsPort: beamtest.FreePort(t)}
		os.MkdirAll(r.dir, 0o700)
		r.cfg = filepath.Join(r.dir, "beamgate.yaml")
		yaml := fmt.Sprintf(haReplicaYAML, r.sshPort, hp, hostKey, r.opsPort, ep, tv.cookiesYAML(auth), prodEpmd, gp, beamtest.PublicKey(t, key))
		if err := os.WriteFile(r.cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		reps[i] = r
	}
	ready := func(r *replica) bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", r.opsPort))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	start := func(r *replica) {
		t.Helper()
		r.serve = startProc(t, bin, "serve", "--config", r.cfg)
		r.serve.waitPort(t, "127.0.0.1", r.sshPort)
		deadline := time.Now().Add(30 * time.Second)
		for !ready(r) {
			if time.Now().After(deadline) {
				t.Fatalf("replica %s never ready:\n%s", r.name, r.serve.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	start(reps[0]) // creates the shared host key, and the gateway secret in Vault
	start(reps[1])
	// Each replica times its Vault requests (login, cookies, the gateway
	// secret, the revocation list) in beamgate_vault_request_seconds.
	for _, r := range reps {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", r.opsPort))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		var n int
		for _, l := range strings.Split(string(body), "\n") {
			if c, ok := strings.CutPrefix(l, "beamgate_vault_request_seconds_count "); ok {
				n, _ = strconv.Atoi(c)
			}
		}
		if n == 0 {
			t.Errorf("replica %s: beamgate_vault_request_seconds counts no request", r.name)
		}
	}
	hcfg := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(hcfg, []byte(fmt.Sprintf(haproxyCfg, hp, reps[0].sshPort, reps[0].opsPort, reps[1].sshPort, reps[1].opsPort)), 0o600)
	hap := startProc(t, haproxy, "-f", hcfg, "-db")
	hap.waitPort(t, "127.0.0.1", hp)
	time.Sleep(500 * time.Millisecond) // both servers' first health checks

	audit := func(r *replica) string { b, _ := os.ReadFile(filepath.Join(r.dir, "audit.jsonl")); return string(b) }
	logins := func(r *replica) int { return strings.Count(audit(r), `"event":"login","session"`) }
	ssh := func(args ...string) string {
		t.Helper()
		code, out := runCmd(t, "ssh", append(sshArgs(hp, key), args...)...)
		if code != 0 {
			t.Fatalf("ssh through haproxy %v: exit %d\n%s", args, code, out)
		}
		return out
	}
	cookie := strings.TrimSpace(ssh("cookie"))
	recipe := ssh("recipe", "prismatic")
	if !strings.Contains(recipe, fmt.Sprintf("-p %d", hp)) {
		t.Fatalf("the recipe does not send the engineer through haproxy (port %d):\n%s", hp, recipe)
	}
	line := beamtest.RecipeLine(t, recipe, "ssh -N")
	tunnel := func(fields []string) *proc {
		t.Helper()
		p := startProc(t, "ssh", append(beamtest.SSHClientArgs(hp, key), fields...)...)
		return p
	}
	recipeFields := strings.Fields(line)[1:]
	fwd := tunnel(recipeFields)
	fwd.waitPort(t, "127.77.1.1", gp)
	eng := beamtest.Start(t, beamtest.Options{Name: "alice_erl@localhost", Cookie: cookie, EpmdPort: ep,
		Env: beamtest.RecipeEnv(t, recipe, t.TempDir()), ExtraArgs: []string{"-connect_all", "false"}})
	ping := func(n *beamtest.Node) string { return n.Eval(t, "net_adm:ping('prismatic@prod-01')") }
	if got := ping(eng); got != "pong" {
		t.Fatalf("ping through haproxy = %s\n%s\n%s", got, reps[0].serve.out.String(), reps[1].serve.out.String())
	}
	serving, other := reps[0], reps[1]
	if !strings.Contains(audit(serving), `"event":"session_start"`) {
		serving, other = other, serving
	}
	if !strings.Contains(audit(serving), `"event":"session_start"`) {
		t.Fatal("no replica recorded the engineer's session")
	}

	// SIGKILL the serving replica; run the same recipe line again.
	t0 := time.Now()
	serving.serve.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-fwd.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the engineer's ssh outlived the replica it was connected to")
	}
	fwd = tunnel(recipeFields)
	fwd.waitPort(t, "127.77.1.1", gp)
	deadline := time.Now().Add(30 * time.Second)
	for ping(eng) != "pong" {
		if time.Now().After(deadline) {
			t.Fatalf("no pong through the surviving replica:\n%s", other.serve.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	failover := time.Since(t0)
	t.Logf("SIGKILL of replica %s to a pong through replica %s (same recipe line, same cookie): %v",
		serving.name, other.name, failover.Round(time.Millisecond))
	if !strings.Contains(audit(other), `"event":"session_start"`) {
		t.Fatalf("the reconnected session is not on replica %s", other.name)
	}
	if got := strings.TrimSpace(ssh("cookie")); got != cookie {
		t.Error("the surviving replica gives alice another gateway cookie")
	}

	// The killed replica restarts; alice opens a second tunnel (her own
	// forwards, on 127.0.0.5) until HAProxy lands it there.
	start(serving)
	time.Sleep(500 * time.Millisecond) // back in HAProxy's pool
	var fwd2 *proc
	for i := 0; ; i++ {
		if i == 6 {
			t.Fatalf("6 connections through haproxy never reached the restarted replica %s", serving.name)
		}
		before := logins(serving)
		fwd2 = tunnel([]string{"-N", "-o", "ExitOnForwardFailure=yes",
			"-L", fmt.Sprintf("127.0.0.1:%d:prod-01:4369", ep+10), "-L", fmt.Sprintf("127.0.0.5:%d:prod-01:4369", ep+10),
			"-L", fmt.Sprintf("127.0.0.5:%d:prod-01:%d", gp, gp), "alice@127.0.0.1"})
		fwd2.waitPort(t, "127.0.0.5", gp)
		if logins(serving) > before {
			break
		}
		fwd2.cmd.Process.Kill()
		<-fwd2.exited
	}
	eng2 := beamtest.Start(t, beamtest.Options{Name: "alice2@localhost", Cookie: cookie, EpmdPort: ep + 10, Hidden: true,
		Inetrc: beamtest.WriteInetrc(t, map[string]string{"prod-01": "127.0.0.5"})})
	if got := ping(eng2); got != "pong" {
		t.Fatalf("second session through replica %s: %s\n%s", serving.name, got, serving.serve.out.String())
	}

	// Offboarding cuts alice on both replicas.
	t1 := time.Now()
	code, out := runCmd(t, bin, "offboard", "alice", "--reason", "left the company", "--config", serving.cfg, "--no-rotate")
	cmdDone := time.Since(t1)
	if code != 0 {
		t.Fatalf("offboard: exit %d\n%s", code, out)
	}
	for _, p := range []*proc{fwd, fwd2} {
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			t.Fatalf("a tunnel survived the offboarding:\n%s\n%s", reps[0].serve.out.String(), reps[1].serve.out.String())
		}
	}
	last := fwd.at
	if fwd2.at.After(last) {
		last = fwd2.at
	}
	t.Logf("offboard: the command took %v; its start to both replicas' tunnels cut %v, its end to both cut %v",
		cmdDone.Round(time.Millisecond), last.Sub(t1).Round(time.Millisecond), last.Sub(t1.Add(cmdDone)).Round(time.Millisecond))
	for _, r := range reps {
		if !strings.Contains(audit(r), `"event":"offboard"`) {
			t.Errorf("replica %s recorded no offboard", r.name)
		}
	}
	for _, r := range reps {
		for _, text := range []string{audit(r), r.serve.out.String()} {
			if strings.Contains(text, prodCookie) {
				t.Errorf("replica %s wrote the production cookie", r.name)
			}
		}
	}
	if rows := prod.OrdersRows(t); len(rows) != len(beamtest.InitialOrders) {
		t.Errorf("production changed: %v", rows)
	}
}
