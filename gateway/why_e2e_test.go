package gateway

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// erlRun runs a stock erl (bounded by timeout) with args, env and a last
// -eval, and returns what it printed.
func erlRun(t *testing.T, env []string, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "erl", args...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestWhyNamesEachMistake makes, with real erl nodes through the
// printed recipe's tunnel, each mistake engineers make, and checks that
// ssh bastion why names each with its reason and fix, and that check walks
// through the last attempt.
func TestWhyNamesEachMistake(t *testing.T) {
	old := hintAfter
	hintAfter = 2 * time.Second
	t.Cleanup(func() { hintAfter = old })
	c := startClusterEnv(t)
	recipe := c.recipe("atlas")
	c.startRecipeForward(c.line(recipe, "ssh -N"))
	env := c.shellEnv(recipe)
	gw := c.gw.Cookie("alice", time.Now())
	ping := func(name, cookie string, env []string, extra ...string) string {
		args := append([]string{"-sname", name, "-connect_all", "false", "-setcookie", cookie, "-noshell"}, extra...)
		return erlRun(t, env, 30*time.Second, append(args, "-eval", `io:format("PING ~p~n", [net_adm:ping('app@prod-a')]), halt().`)...)
	}

	// 1-3: a wrong cookie, the production cookie, an expired gateway cookie.
	for _, ck := range []string{"WRONGCOOKIE", prodCookie, c.gw.Cookie("alice", time.Now().Add(-5*time.Hour))} {
		if out := ping("ck", ck, env); !strings.Contains(out, "PING pang") {
			t.Fatalf("ping with a bad cookie: %s", out)
		}
	}
	// 4: the same name twice through one tunnel.
	first := exec.Command("erl", "-sname", "twin", "-connect_all", "false", "-setcookie", gw, "-noshell", "-eval", "timer:sleep(20000), halt().")
	first.Env, first.Dir = env, t.TempDir()
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	c.waitAudit(`"alive":"twin"`)
	if out := erlRun(t, env, 30*time.Second, "-sname", "twin", "-setcookie", gw, "-noshell", "-eval", "halt()."); !strings.Contains(out, "in use") {
		t.Errorf("second twin: %s", out)
	}
	// 5: a host mapped to another host's address: prod-b → prod-a's.
	bad := filepath.Join(t.TempDir(), "wrong.inetrc")
	os.WriteFile(bad, []byte(`{host, {127,77,1,1}, ["prod-a", "prod-b"]}.`+"\n{lookup, [file, native]}.\n"), 0o644)
	wrongEnv := append(append([]string(nil), env...), "ERL_INETRC="+bad)
	erlRun(t, wrongEnv, 30*time.Second, "-sname", "mixed", "-connect_all", "false", "-setcookie", gw, "-noshell",
		"-eval", `io:format("PING ~p~n", [net_adm:ping('app@prod-b')]), halt().`)
	// 6: a remote shell (in a terminal: erl without one starts no shell).
	remoteShell(t, c.home, env, "erl -sname rsh -connect_all false -setcookie "+gw+" -remsh app@prod-a")
	// 7: a kill and a send, dropped by policy.
	erlRun(t, env, 30*time.Second, "-sname", "sig", "-connect_all", "false", "-setcookie", gw, "-noshell", "-eval",
		`P = rpc:call('app@prod-a', erlang, whereis, [beamgate_state]), exit(P, kill), P ! hello, timer:sleep(500), halt().`)
	// 8: ERL_EPMD_PORT missing: a tunnel nothing uses.
	idle := exec.Command("ssh", c.sshArgs("alice", c.aliceK, "-N")...)
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idle.Process.Kill(); idle.Wait() })
	// 9: ERL_INETRC missing: the node registers, then asks for nothing.
	var noInetrc []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "ERL_INETRC=") {
			noInetrc = append(noInetrc, kv)
		}
	}
	alone := exec.Command("erl", "-sname", "alone", "-connect_all", "false", "-setcookie", gw, "-noshell", "-eval",
		`net_adm:ping('app@prod-a'), timer:sleep(20000), halt().`)
	alone.Env, alone.Dir = noInetrc, t.TempDir()
	if err := alone.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alone.Process.Kill(); alone.Wait() })
	c.waitAudit(`"alive":"alone"`)
	time.Sleep(3 * time.Second)

	r := c.ssh("alice", c.aliceK, nil, "why", "-n", "50")
	t.Logf("why:\n%s", r.stdout)
	if r.code != 0 {
		t.Fatalf("why: exit %d %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"(rule gateway-cookie)", "run ssh alice@127.0.0.1 -p " + c.port + " cookie and start your node with -setcookie",
		"used the production cookie of cluster atlas", "take the production cookie off your machine",
		"(rule gateway-cookie.expired)",
		"your node twin registering through the tunnel: refused", "pick another -sname",
		"ERL_INETRC maps a host to the wrong address",
		"(rule remote-shell)", "remote shells are not allowed",
		"refused, not forwarded",
		"carried nothing since it connected", "export the recipe's ERL_EPMD_PORT",
		"your node alone registered", "export ERL_INETRC=$HOME/.beamgate-atlas.inetrc",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("why lacks %q", want)
		}
	}
	if strings.Contains(r.stdout+r.stderr, prodCookie) || strings.Contains(r.stdout, gw) {
		t.Fatal("why shows a cookie")
	}
	// Every command it prints can be pasted as printed.
	if strings.Contains(r.stdout, "ssh bastion") {
		t.Errorf("why prints a command naming a placeholder bastion:\n%s", r.stdout)
	}

	r = c.ssh("alice", c.aliceK, nil, "check")
	t.Logf("check:\n%s", r.stdout)
	for _, want := range []string{"tunnel (ssh -N)", "node registered", "epmd lookup", "handshake", "cookie proof", "erl -noshell -eval"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check lacks %q", want)
		}
	}
	// check's local command, pasted into the engineer's shell, reads the
	// recipe's environment and the tunnel.
	line := beamtest.RecipeLine(t, r.stdout, "erl -noshell")
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	t.Logf("local check:\n%s", out)
	if err != nil || !strings.Contains(string(out), "resolves to {ok,{127,77,1,1}}") || !strings.Contains(string(out), "{port,") {
		t.Errorf("local check: %v\n%s", err, out)
	}
}

// remoteShell runs cmdline (an erl -remsh or iex --remsh) in a terminal
// with env, and returns the screen once it has exited, failing the test
// unless it printed beamgate's notice and exited within 15 s.
func remoteShell(t *testing.T, home string, env []string, cmdline string) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "remsh.sh")
	var b strings.Builder
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		b.WriteString("export " + k + "='" + v + "'\n")
	}
	b.WriteString("cd " + home + "\nstart=$(date +%s%N)\n" + cmdline + "\necho \"remsh-exited-$? after $((($(date +%s%N) - start) / 1000000)) ms\"\nsleep 60\n")
	if err := os.WriteFile(script, []byte(b.String()), 0o700); err != nil {
		t.Fatal(err)
	}
	m := beamtest.StartTmux(t, 200, 50, "sh "+script)
	screen := m.WaitContains(15*time.Second, "remsh-exited-")
	if !strings.Contains(screen, "remote shells are not allowed through beamgate (rule remote-shell)") || !strings.Contains(screen, "remsh-exited-") ||
		strings.Contains(screen, "ssh bastion") {
		t.Errorf("%s:\n%s", cmdline, screen)
	}
	return screen
}

// TestRemoteShellFailsFast: erl -remsh and iex --remsh through the
// recipe's tunnel print beamgate's notice, naming the rule, and exit at
// once instead of hanging or printing crash reports.
func TestRemoteShellFailsFast(t *testing.T) {
	beamtest.RequireTmux(t)
	c := startClusterEnv(t)
	recipe := c.recipe("atlas")
	c.startRecipeForward(c.line(recipe, "ssh -N"))
	env := c.shellEnv(recipe)
	gw := c.gw.Cookie("alice", time.Now())
	screen := remoteShell(t, c.home, env, "erl -sname rsh -connect_all false -setcookie "+gw+" -remsh app@prod-a")
	t.Logf("erl -remsh:\n%s", strings.TrimSpace(screen))
	if _, err := exec.LookPath("iex"); err == nil {
		screen = remoteShell(t, c.home, env, "iex --sname rsh2 --erl \"-connect_all false\" --cookie "+gw+" --remsh app@prod-a")
		t.Logf("iex --remsh:\n%s", strings.TrimSpace(screen))
	}
	log := c.waitAudit(`"rule":"remote-shell"`)
	if strings.Contains(log, `"rule":"link"`) || strings.Contains(log, `"rule":"link.exit"`) {
		t.Errorf("the stand-in shell's link traffic was refused as a state change:\n%s", log)
	}
}
