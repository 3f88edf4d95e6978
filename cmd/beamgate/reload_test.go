package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// reloadYAML is the reload test's configuration: %s are the users block.
const reloadYAML = `listen: 127.0.0.1:%d
host_key: ./state/host_key
engineer_epmd_port: %d
audit:
  path: ./state/audit.jsonl
cookies:
  backend: file
  file: ./state/cookies.yaml
clusters:
  billing:
    nodes:
      - {name: billing@bill-01, dial: "127.0.0.3:1", gateway_port: 4380}
  prismatic:
    nodes:
      - {name: prismatic@prod-01, dial: "127.0.0.2:%d", gateway_port: %d}
roles:
  observer: {clusters: [prismatic], policy: readonly, mode: enforce}
  biller: {clusters: [billing], policy: readonly, mode: enforce}
users:
%s`

// TestReloadKeepsAllowedSessions runs the real binary with two live
// sessions (alice through the printed recipe, bob through his own
// forwards), then reloads on SIGHUP: a new user logs in at once, the user
// whose role was removed is cut at once, the other session goes on
// untouched; an invalid file changes nothing.
func TestReloadKeepsAllowedSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds beamgate, starts BEAM nodes and OpenSSH")
	}
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t)
	bin, dir := beamtest.BuildBeamgate(t, t.TempDir()), t.TempDir()
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	prod := beamtest.StartProduction(t, beamtest.Options{Name: "prismatic@prod-01", Cookie: faultProdCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd})
	keys := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		keys[u] = beamtest.NewSSHKey(t, dir, u)
	}
	// prismatic is the second cluster by name: its recipe port is
	// engineer_epmd_port + 1, its host address 127.77.2.1.
	sshPort := beamtest.FreePort(t)
	ep := beamtest.FreePortOn(t, "127.0.0.1", "127.77.2.1", "127.0.0.4") // prismatic's: base + 1
	gp := beamtest.FreePortOn(t, "127.77.2.1", "127.0.0.4")
	os.MkdirAll(filepath.Join(dir, "state"), 0o700)
	os.WriteFile(filepath.Join(dir, "state", "cookies.yaml"), []byte("prismatic: "+faultProdCookie+"\nbilling: other\n"), 0o600)
	cfg := filepath.Join(dir, "beamgate.yaml")
	user := func(name string, roles string) string {
		return fmt.Sprintf("  %s:\n    keys: [%q]\n    roles: %s\n", name, beamtest.PublicKey(t, keys[name]), roles)
	}
	write := func(users string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(reloadYAML, sshPort, ep-1, prodEpmd, gp, users)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(user("alice", "[observer]") + user("bob", "[observer, biller]"))
	serve := startFaultProc(t, bin, "serve", "--config", cfg)
	beamtest.WaitListening(t, fmt.Sprintf("127.0.0.1:%d", sshPort), serve.exited, serve.out.String)
	ssh := func(u string, args ...string) (int, string) {
		code, out, errOut := faultRun(t, "ssh", append(append(beamtest.SSHClientArgs(sshPort, keys[u]), u+"@127.0.0.1"), args...)...)
		return code, out + errOut
	}
	cookie := func(u string) string {
		_, out := ssh(u, "cookie")
		return strings.TrimSpace(out)
	}

	// alice: the printed recipe.
	_, recipe := ssh("alice", "recipe", "prismatic")
	beamtest.StartRecipeForward(t, beamtest.RecipeLine(t, recipe, "ssh -N"), sshPort, keys["alice"])
	aliceEnv := beamtest.RecipeEnv(t, recipe, t.TempDir())
	alice := beamtest.Start(t, beamtest.Options{Name: "alice_erl@localhost", Cookie: cookie("alice"), EpmdPort: ep,
		Env: aliceEnv, ExtraArgs: []string{"-connect_all", "false"}})
	// bob: his own forwards, on 127.0.0.4.
	bobFwd := startFaultProc(t, "ssh", append(beamtest.SSHClientArgs(sshPort, keys["bob"], "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:prod-01:4369", ep+10), "-L", fmt.Sprintf("127.0.0.4:%d:prod-01:4369", ep+10),
		"-L", fmt.Sprintf("127.0.0.4:%d:prod-01:%d", gp, gp)), "bob@127.0.0.1")...)
	beamtest.WaitListening(t, fmt.Sprintf("127.0.0.4:%d", gp), bobFwd.exited, bobFwd.out.String)
	bob := beamtest.Start(t, beamtest.Options{Name: "bob_erl@localhost", Cookie: cookie("bob"), EpmdPort: ep + 10, Hidden: true,
		Inetrc: beamtest.WriteInetrc(t, map[string]string{"prod-01": "127.0.0.4"})})
	for name, n := range map[string]*beamtest.Node{"alice": alice, "bob": bob} {
		if got := n.Eval(t, "net_adm:ping('prismatic@prod-01')"); got != "pong" {
			t.Fatalf("%s ping = %s\n%s", name, got, serve.out.String())
		}
	}
	if code, _ := ssh("carol", "nodes"); code == 0 {
		t.Fatal("carol logged in before she was configured")
	}
	// SIGHUP also rotates the audit log: read every file of the set.
	auditLog := func() string {
		paths, _ := filepath.Glob(filepath.Join(dir, "state", "audit*.jsonl*"))
		var b strings.Builder
		for _, p := range paths {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		return b.String()
	}
	starts := func(u string) int { return countLines(auditLog(), `"event":"session_start"`, `"user":"`+u+`"`) }
	aliceStarts := starts("alice")

	// Reload: carol added, bob's observer role removed. Bob's laptop is
	// asleep (his ssh stopped): it never answers the gateway's
	// CHANNEL_CLOSE, and his session must end all the same.
	bobFwd.cmd.Process.Signal(syscall.SIGSTOP)
	write(user("alice", "[observer]") + user("bob", "[biller]") + user("carol", "[observer]"))
	t0 := time.Now()
	serve.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(15 * time.Second)
	for countLines(auditLog(), `"event":"session_end"`, "may no longer reach cluster prismatic") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("bob's session did not end:\n%s\n%s", auditLog(), serve.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("SIGHUP to the end of bob's session (his ssh stopped): %v", time.Since(t0).Round(time.Millisecond))
	bobFwd.cmd.Process.Signal(syscall.SIGCONT)
	if code, out := ssh("carol", "nodes"); code != 0 || !strings.Contains(out, "prismatic@prod-01") {
		t.Errorf("carol after the reload: exit %d\n%s", code, out)
	}
	if got := bob.Eval(t, "nodes(hidden)"); got != "[]" {
		t.Errorf("bob still connected: %s", got)
	}
	if got := alice.Eval(t, "{nodes(), rpc:call('prismatic@prod-01', erlang, node, [])}"); got != "{['prismatic@prod-01'],'prismatic@prod-01'}" {
		t.Errorf("alice after the reload: %s", got)
	}
	if starts("alice") != aliceStarts {
		t.Errorf("alice's session was replaced (%d session starts, was %d)", starts("alice"), aliceStarts)
	}
	if !strings.Contains(auditLog(), `"event":"config_reload"`) {
		t.Error("no config_reload audit record")
	}

	// An invalid file changes nothing.
	os.WriteFile(cfg, []byte("listn: nope\n"), 0o600)
	serve.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(serve.out.String(), "configuration reload failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload failure logged:\n%s", serve.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(serve.out.String(), "did you mean listen") {
		t.Errorf("the failed reload does not name the key:\n%s", serve.out.String())
	}
	if code, _ := ssh("carol", "nodes"); code != 0 {
		t.Error("carol refused after an invalid reload")
	}
	if got := alice.Eval(t, "rpc:call('prismatic@prod-01', erlang, node, [])"); got != "'prismatic@prod-01'" {
		t.Errorf("alice after an invalid reload: %s", got)
	}
	if rows := prod.OrdersRows(t); len(rows) != len(beamtest.InitialOrders) {
		t.Errorf("production changed: %v", rows)
	}
}

// countLines counts the lines of text containing every one of want.
func countLines(text string, want ...string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			n++
		}
	}
	return n
}
