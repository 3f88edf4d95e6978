package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// TestBufferBudget: three engineer nodes start streaming a large ETS table
// from production (observer's Table Viewer, observer_backend:get_table/3)
// and their tunnels (each engineer's ssh -N) are then stopped with
// SIGSTOP, so production's output piles up in the gateway. The gateway's memory stays bounded
// by its buffer budget, production is never blocked (a direct rpc still
// answers), and the sessions over budget are cut, with the reason audited.
func TestBufferBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds beamgate, starts BEAM nodes and OpenSSH")
	}
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t)
	const perSession, budget = 64 << 20, 24 << 20
	bin, dir := beamtest.BuildBeamgate(t, t.TempDir()), t.TempDir()
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	prod := beamtest.StartProduction(t, beamtest.Options{Name: "prismatic@prod-01", Cookie: faultProdCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd})
	// 60000 rows of 2 KiB: about 120 MiB per stream, far over the budget.
	if got := prod.Eval(t, `spawn(fun() -> big = ets:new(big, [named_table, public]),
		ets:insert(big, [{N, binary:copy(<<N:16384>>)} || N <- lists:seq(1, 60000)]), receive never -> ok end end), timer:sleep(3000), ets:info(big, size)`); got != "60000" {
		t.Fatalf("big table: %s", got)
	}
	key := beamtest.NewSSHKey(t, dir, "alice")
	sshPort, ep := beamtest.FreePort(t), beamtest.FreePortOn(t, "127.0.0.1")
	gp := beamtest.FreePortOn(t, "127.0.0.11", "127.0.0.12", "127.0.0.13")
	os.MkdirAll(filepath.Join(dir, "state"), 0o700)
	os.WriteFile(filepath.Join(dir, "state", "cookies.yaml"), []byte("prismatic: "+faultProdCookie+"\n"), 0o600)
	cfg := filepath.Join(dir, "beamgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:%d
host_key: ./state/host_key
engineer_epmd_port: %d
audit: {path: ./state/audit.jsonl}
cookies: {backend: file, file: ./state/cookies.yaml}
clusters:
  prismatic:
    nodes: [{name: prismatic@prod-01, dial: "127.0.0.2:%d", gateway_port: %d}]
users:
  alice: {keys: [%q], roles: [observer]}
roles:
  observer: {clusters: [prismatic], policy: readonly, mode: enforce}
limits:
  max_buffered_per_session: %d
  buffer_budget: %d
`, sshPort, ep, prodEpmd, gp, beamtest.PublicKey(t, key), perSession, budget)), 0o600)
	t.Setenv("GOTRACEBACK", "all") // budgetDiagnosis's goroutine dump
	serve := startFaultProc(t, bin, "serve", "--config", cfg)
	beamtest.WaitListening(t, fmt.Sprintf("127.0.0.1:%d", sshPort), serve.exited, serve.out.String)
	_, out, _ := faultRun(t, "ssh", append(beamtest.SSHClientArgs(sshPort, key), "alice@127.0.0.1", "cookie")...)
	cookie := strings.TrimSpace(out)

	rss := func() int64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", serve.cmd.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
		return 0
	}
	base := rss()
	var stopped []*faultProc
	t.Cleanup(func() {
		for _, p := range stopped {
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	for i := range 3 {
		// Each engineer has its own tunnel: its own local epmd port, and
		// the production host on its own loopback address.
		addr, lep := fmt.Sprintf("127.0.0.%d", 11+i), ep+1+i
		fwd := startFaultProc(t, "ssh", append(beamtest.SSHClientArgs(sshPort, key, "-N", "-o", "ExitOnForwardFailure=yes",
			"-L", fmt.Sprintf("%d:prod-01:4369", lep), "-L", fmt.Sprintf("%s:%d:prod-01:4369", addr, lep),
			"-L", fmt.Sprintf("%s:%d:prod-01:%d", addr, gp, gp)), "alice@127.0.0.1")...)
		beamtest.WaitListening(t, fmt.Sprintf("%s:%d", addr, gp), fwd.exited, fwd.out.String)
		eng := beamtest.Start(t, beamtest.Options{Name: fmt.Sprintf("eng%d@localhost", i), Cookie: cookie, EpmdPort: lep, Hidden: true,
			Inetrc: beamtest.WriteInetrc(t, map[string]string{"prod-01": addr})})
		// Start the stream, then stop the tunnel: production's rows pile
		// up in the gateway. The rows go to a process that outlives the
		// eval, as they go to observer's table window: get_table links to
		// its receiver, and a link to the eval's own process, which exits
		// at once, often arrives after it is gone; the noproc exit then
		// ends the stream on production (2 streams of 5, tried directly
		// between two nodes), and if that happens before the SIGSTOP this
		// session holds too little for the budget ever to cut it.
		if got := eng.Eval(t, `P = spawn(fun() -> receive stop -> ok end end), is_pid(rpc:call('prismatic@prod-01', observer_backend, get_table, [P, big, ets]))`); got != "true" {
			t.Fatalf("get_table: %s", got)
		}
		fwd.cmd.Process.Signal(syscall.SIGSTOP)
		stopped = append(stopped, fwd)
	}
	direct := beamtest.Start(t, beamtest.Options{Name: "direct@localhost", Cookie: faultProdCookie, EpmdPort: prodEpmd, Hidden: true,
		Inetrc: beamtest.WriteInetrc(t, map[string]string{"prod-01": "127.0.0.2"})})
	auditLog := func() string { b, _ := os.ReadFile(filepath.Join(dir, "state", "audit.jsonl")); return string(b) }
	var peak int64
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(auditLog(), `"event":"session_end"`) < 3 {
		peak = max(peak, rss())
		if time.Now().After(deadline) {
			t.Fatalf("not every stopped engineer's session ended:\n%s", budgetDiagnosis(auditLog(), serve))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t0 := time.Now()
	if got := direct.Eval(t, `rpc:call('prismatic@prod-01', erlang, node, [], 5000)`); got != "'prismatic@prod-01'" {
		t.Errorf("a direct rpc to production while engineers are stopped: %s", got)
	}
	t.Logf("gateway RSS %d MiB before, peak %d MiB (budget %d MiB); a direct rpc took %v",
		base>>20, peak>>20, budget>>20, time.Since(t0).Round(time.Millisecond))
	if peak-base > budget+perSession+(32<<20) {
		t.Errorf("gateway RSS grew by %d MiB, over the %d MiB budget (+ one session's batch in flight and 32 MiB of slack)", (peak-base)>>20, budget>>20)
	}
	log := auditLog()
	if !strings.Contains(log, "limits.buffer_budget") && !strings.Contains(log, "-byte cap") {
		t.Errorf("no session ended over the budget or its cap:\n%s", log)
	}
	if !strings.Contains(log, "buffer budget") {
		t.Errorf("no session cut by the gateway-wide budget:\n%s", log)
	}
}

// budgetDiagnosis is what a failed TestBufferBudget prints: each relay
// session's start, cut and end records (not the whole audit log), then
// the gateway's goroutines (SIGQUIT makes the Go runtime print them and
// exit), where a session that never ended is stuck.
func budgetDiagnosis(log string, serve *faultProc) string {
	var b strings.Builder
	for _, l := range strings.Split(log, "\n") {
		for _, ev := range []string{"session_start", "session_cut", "session_end"} {
			if strings.Contains(l, `"event":"`+ev+`"`) {
				fmt.Fprintf(&b, "%.400s\n", l)
			}
		}
	}
	serve.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-serve.exited:
	case <-time.After(10 * time.Second):
	}
	out := serve.out.String()
	if i := strings.Index(out, "goroutine "); i >= 0 {
		out = out[i:]
	}
	const keep = 60 << 10
	if len(out) > keep {
		out = out[:keep] + "\n[...]"
	}
	b.WriteString("gateway goroutines:\n" + out)
	return b.String()
}
