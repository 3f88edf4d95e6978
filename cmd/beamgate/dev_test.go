package main

import (
	"beamgate/internal/beamtest"
	"net"
	"syscall"

	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDevRecipe runs beamgate dev, logs in with the key it generated, and
// follows the printed recipe with a real ssh -N -L and a hidden erl node
// that connects to every node of the demo cluster and reads from each.
func TestDevRecipe(t *testing.T) {
	for _, b := range []string{"erl", "epmd", "ssh"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed", b)
		}
	}
	t.Setenv("HOME", t.TempDir())
	state := t.TempDir()
	// The recipe binds the engineer's epmd port on 127.0.0.1 and on the
	// demo hosts' addresses 127.77.1.1 and .2, and the gateway ports
	// (PORT, PORT+1, PORT+2) on the latter.
	sshPort := beamtest.FreePort(t)
	addrs := []string{"127.0.0.1", "127.77.1.1", "127.77.1.2"}
	gwPort, epmdLocal := beamtest.FreePortOn(t, addrs...), beamtest.FreePortOn(t, addrs...)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr beamtest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--state", state, "--listen", fmt.Sprintf("127.0.0.1:%d", sshPort),
			"--gateway-port", strconv.Itoa(gwPort), "--engineer-epmd-port", strconv.Itoa(epmdLocal)}, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("beamgate dev did not stop")
		}
	})
	deadline := time.Now().Add(40 * time.Second)
	for !strings.Contains(stdout.String(), "To see your recipe") {
		if time.Now().After(deadline) {
			t.Fatalf("beamgate dev did not start:\n%s\n%s", stdout.String(), stderr.String())
		}
		select {
		case code := <-done:
			t.Fatalf("beamgate dev exited %d:\n%s\n%s", code, stdout.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	key := filepath.Join(state, "dev_ed25519")
	base := beamtest.SSHClientArgs(sshPort, key)
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	banner, err := exec.CommandContext(sctx, "ssh", append(base, "dev@127.0.0.1")...).Output()
	if err != nil {
		t.Fatalf("ssh dev: %v", err)
	}
	for _, re := range []string{
		`demo@demo-prod-1\s+demo-prod-1\s+127\.77\.1\.1:` + strconv.Itoa(gwPort) + `\s+yes`,
		`demo@demo-prod-2\s+demo-prod-2\s+127\.77\.1\.2:` + strconv.Itoa(gwPort+1) + `\s+yes`,
		`worker@demo-prod-2\s+demo-prod-2\s+127\.77\.1\.2:` + strconv.Itoa(gwPort+2) + `\s+yes`,
	} {
		if !regexp.MustCompile(re).Match(banner) {
			t.Fatalf("banner does not show the demo nodes reachable (%s):\n%s", re, banner)
		}
	}
	// The recipe's ssh -N names the generated key, so it works pasted as
	// printed.
	if want := fmt.Sprintf("dev@127.0.0.1 -p %d -i %s", sshPort, key); !bytes.Contains(banner, []byte("ssh -N ")) || !bytes.Contains(banner, []byte(want)) {
		t.Errorf("recipe's ssh -N lacks %q:\n%s", want, banner)
	}
	cookie, err := exec.CommandContext(sctx, "ssh", append(base, "dev@127.0.0.1", "cookie")...).Output()
	if err != nil {
		t.Fatal(err)
	}
	prodCookies, _ := os.ReadFile(filepath.Join(state, "cookies.yaml"))
	prod := strings.TrimSpace(strings.TrimPrefix(string(prodCookies), "demo:"))
	if prod == "" || bytes.Contains(banner, []byte(prod)) {
		t.Fatal("banner shows the production cookie")
	}

	// Follow the printed recipe literally: its ssh -N, printf and export
	// lines, and its erl line (which connects to every node), plus checks.
	recipe := string(banner)
	beamtest.StartRecipeForward(t, beamtest.RecipeLine(t, recipe, "ssh -N"), sshPort, key)
	home := t.TempDir()
	env := beamtest.RecipeEnv(t, recipe, home)
	ectx, ecancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer ecancel()
	out, err := beamtest.RunRecipeErl(t, ectx, beamtest.RecipeLine(t, recipe, "erl "), env, home,
		`io:format("CHECK node ~w~n", [[rpc:call(N, erlang, node, []) || N <- lists:sort(nodes())]]), halt().`)
	if err != nil || !strings.Contains(out, "beamgate: connected ['demo@demo-prod-1','demo@demo-prod-2','worker@demo-prod-2'], not connected []") ||
		beamtest.CheckLines(out)["node"] != "['demo@demo-prod-1','demo@demo-prod-2','worker@demo-prod-2']" {
		t.Fatalf("engineer node following the recipe: %v\n%s\n%q", err, out, beamtest.CheckLines(out))
	}
	if c := strings.TrimSpace(string(cookie)); c == "" || !strings.Contains(recipe, "-setcookie "+c+" ") {
		t.Errorf("ssh dev cookie (%q) is not the recipe's cookie", c)
	}
	if strings.Contains(string(out), prod) || strings.Contains(stderr.String(), prod) {
		t.Fatal("production cookie leaked")
	}

	// The seeded workload's culprits show in the views.
	view := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(sctx, "ssh", append(append(base, "dev@127.0.0.1"), args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh dev %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if top := view("top", "demo", "--by", "memory", "-n", "3"); !regexp.MustCompile(`\ndemo@demo-prod-\d\s+<[0-9.]+>\s+price_cache\s`).MatchString(top) {
		t.Errorf("cluster top by memory does not lead with price_cache:\n%s", top)
	}
	if top := view("top", "demo@demo-prod-1", "--by", "message_queue_len", "-n", "1"); !strings.Contains(top, "order_intake") {
		t.Errorf("top by message queue does not show order_intake:\n%s", top)
	}
	if ets := view("ets", "demo@demo-prod-2", "-n", "3"); !strings.Contains(ets, "shop_skus") {
		t.Errorf("ets does not show the demo tables:\n%s", ets)
	}
	if apps := view("apps", "demo@demo-prod-1"); !regexp.MustCompile(`payment_poller\s+<[0-9.]+>\s+payment_poller\s+worker\s+permanent`).MatchString(apps) {
		t.Errorf("apps does not show demo_shop's tree with restart types:\n%s", apps)
	}
	// The commands why prints name this gateway and the generated key:
	// they work pasted as printed.
	target := fmt.Sprintf("ssh dev@127.0.0.1 -p %d -i %s ", sshPort, key)
	if why := view("why"); !strings.Contains(why, target+"check") {
		t.Errorf("why does not print a pasteable %q:\n%s", target+"check", why)
	}

	// The login line dev printed, pasted by a newcomer who takes a while
	// to read and accept the host key on their first login (a fresh
	// known_hosts, so ssh asks): the gateway waits for them.
	if _, err := exec.LookPath("tmux"); err != nil {
		return
	}
	login := ""
	for _, l := range strings.Split(stdout.String(), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "ssh ") && strings.HasSuffix(l, "dev@127.0.0.1") {
			login = l
		}
	}
	if login == "" {
		t.Fatalf("dev printed no login line:\n%s", stdout.String())
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	m := beamtest.StartTmux(t, 200, 50, login+" -o UserKnownHostsFile="+known+"; sleep 60")
	m.WaitContains(20*time.Second, "Are you sure you want to continue connecting")
	time.Sleep(12 * time.Second) // past the 10 s the handshake once allowed
	m.SendKeys("yes", "Enter")
	if screen := m.WaitContains(20*time.Second, "Your gateway cookie"); strings.Contains(screen, "Broken pipe") {
		t.Errorf("first login after a slow host-key prompt:\n%s", screen)
	}
}

// A busy --listen address fails at once, before anything is printed,
// naming the flag to change.
func TestDevBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("HOME", t.TempDir())
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"dev", "--state", t.TempDir(), "--listen", l.Addr().String()}, &stdout, &stderr)
	if code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "--listen 127.0.0.1:PORT") {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, stdout.String(), stderr.String())
	}
}

// Closing dev's terminal (SIGHUP) stops it, as Ctrl-C does; it does not
// rotate the audit log and run on detached, holding the port.
func TestDevStopsOnHangup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds beamgate")
	}
	bin := beamtest.BuildBeamgate(t, t.TempDir())
	port := beamtest.FreePort(t)
	cmd := exec.Command(bin, "dev", "--state", t.TempDir(), "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "PATH=/nonexistent") // no erl: no demo node
	var out beamtest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	beamtest.WaitListening(t, fmt.Sprintf("127.0.0.1:%d", port), done, out.String)
	cmd.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-exited:
		if err != nil || !strings.Contains(out.String(), "shutting down") {
			t.Errorf("dev after SIGHUP: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("dev still runs 30 s after SIGHUP\n%s", out.String())
	}
}
