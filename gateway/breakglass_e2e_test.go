package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/cookies"
	"beamgate/internal/beamtest"
	"beamgate/internal/otp"
)

// TestBreakGlassShell: the whole break-glass flow with the real OpenSSH
// client against a real production node. alice (role oncall: shell:
// request) asks; she may not approve herself; bob (role lead: shell:
// approve) lists and approves; a webhook hears each step. alice's
// `ssh -t … shell` runs in tmux: a marker expression is on disk in the
// audit log before production evaluates it (production stamps the time),
// variables persist between expressions, output is recorded. bob revokes
// the grant and the shell closes at once; alice is then refused, as is a
// shell with no grant, on a node the grant does not cover, and a request
// from a role without shell: request.
func TestBreakGlassShell(t *testing.T) { breakGlassFlow(t, "") }

// TestBreakGlassShellOTP runs the same flow against OTP 27 and 29
// production nodes (make matrix).
func TestBreakGlassShellOTP(t *testing.T) {
	if !otp.Enabled() {
		t.Skipf("the OTP 27 and 29 releases run with %s=1 (make matrix)", otp.EnableEnv)
	}
	for _, rel := range otp.Releases[1:] {
		t.Run("OTP"+rel, func(t *testing.T) { breakGlassFlow(t, otp.Erl(t, rel)) })
	}
}

// breakGlassFlow is TestBreakGlassShell with production on prodErl ("":
// the machine's erl).
func breakGlassFlow(t *testing.T, prodErl string) {
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t)
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	prod := beamtest.StartProduction(t, beamtest.Options{Name: "prismatic@prod-01", Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd, Erl: prodErl})

	var hookMu sync.Mutex
	var hooks []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var m map[string]any
		json.Unmarshal(b, &m)
		hookMu.Lock()
		hooks = append(hooks, m)
		hookMu.Unlock()
	}))
	t.Cleanup(hook.Close)

	rev := &fakeRevocations{snap: cookies.Snapshot{Version: 1}}
	e := startGateway(t, withShellRoles(envOptions{
		dial: net.JoinHostPort("127.0.0.2", strconv.Itoa(prodEpmd)), realRelay: true,
		revocations: rev, revStale: time.Minute,
		extraYAML: "break_glass:\n  max_duration: 1h\n  webhook: " + hook.URL + "\n",
	}))
	const node = "prismatic@prod-01"

	// No grant: refused, naming the command that asks for one.
	r := e.ssh("alice", e.aliceK, []string{"-tt"}, "shell", node)
	if r.code != 1 || !strings.Contains(r.stderr+r.stdout, "you have no active break-glass grant on prismatic@prod-01; ask for one with: ssh alice@127.0.0.1 -p") {
		t.Fatalf("shell without a grant: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// bob's roles may approve but not request.
	r = e.ssh("bob", e.bobK, nil, "shell-request", node, "--reason", "curious")
	if r.code != 1 || !strings.Contains(r.stderr, "none of your roles (billing, lead) may request shells on cluster prismatic (roles.NAME.shell: request)") {
		t.Errorf("a request from a role without shell: request: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = e.ssh("alice", e.aliceK, nil, "shell-request", node, "--reason", "queue", "stuck", "on", "checkout", "--for", "5h")
	if r.code != 1 || !strings.Contains(r.stderr, "--for 5h0m0s is longer than the 1h0m0s this gateway allows") {
		t.Errorf("a request over max_duration: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = e.ssh("alice", e.aliceK, nil, "shell-request", node, "--reason", "queue", "stuck", "on", "checkout", "--for", "20m")
	if r.code != 0 {
		t.Fatalf("shell-request: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	id := lines[len(lines)-1]
	if !strings.HasPrefix(id, "sh-") || !strings.Contains(r.stdout, "shell-approve "+id) {
		t.Fatalf("shell-request output (the id on the last line):\n%s", r.stdout)
	}
	r = e.ssh("alice", e.aliceK, nil, "shell-approve", id)
	if r.code != 1 || !strings.Contains(r.stderr, "you cannot approve your own request") {
		t.Errorf("self-approval: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = e.ssh("bob", e.bobK, nil, "shell-requests")
	if r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "queue stuck on checkout") {
		t.Errorf("bob's shell-requests:\n%s%s", r.stdout, r.stderr)
	}
	r = e.ssh("bob", e.bobK, nil, "shell-approve", id)
	if r.code != 0 || !strings.Contains(r.stdout, "alice may open a shell on "+node) {
		t.Fatalf("bob approves: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = e.ssh("alice", e.aliceK, nil, "shell-grants")
	if r.code != 0 || !strings.Contains(r.stdout, id) {
		t.Errorf("alice's shell-grants:\n%s%s", r.stdout, r.stderr)
	}
	// The grant covers prod-01 only.
	r = e.ssh("alice", e.aliceK, []string{"-tt"}, "shell", "billing@bill-01")
	if r.code != 1 || !strings.Contains(r.stderr+r.stdout, "no active break-glass grant on billing@bill-01") {
		t.Errorf("a shell on a node the grant does not cover: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The shell, in a real terminal.
	sshCmd := "ssh -tt " + strings.Join(quoteArgs(e.sshArgs("alice", e.aliceK)), " ") + " shell " + node
	tm := beamtest.StartTmux(t, 160, 40, sshCmd+"; sleep 60") // the pane stays after ssh exits
	wait := func(want string, d time.Duration) {
		t.Helper()
		if screen, ok := tm.WaitFor(d, func(s string) bool { return strings.Contains(s, want) }); !ok {
			t.Fatalf("the shell never showed %q:\n%s", want, screen)
		}
	}
	wait("("+node+")1>", 30*time.Second)
	marker := fmt.Sprintf("bg_marker_%d", time.Now().UnixNano())
	tm.SendKeys(fmt.Sprintf("application:set_env(kernel, %s, os:system_time(microsecond)), %s.", marker, marker), "Enter")
	wait("("+node+")2>", 30*time.Second)
	tm.SendKeys("X = 41.", "Enter")
	wait("("+node+")3>", 30*time.Second)
	tm.SendKeys("io:format(\"hello ~p~n\", [X + 1]).", "Enter")
	wait("hello 42", 30*time.Second)
	// Even a granted shell does not show the production cookie.
	tm.SendKeys("erlang:get_cookie().", "Enter")
	wait("'[cookie]'", 30*time.Second)

	evaluated := prod.Eval(t, "element(2, application:get_env(kernel, "+marker+"))")
	prodAt, err := strconv.ParseInt(evaluated, 10, 64)
	if err != nil {
		t.Fatalf("production's marker time: %s", evaluated)
	}
	var inputAt time.Time
	for _, l := range strings.Split(e.auditLog(), "\n") {
		if strings.Contains(l, `"event":"shell_input"`) && strings.Contains(l, marker) {
			var rec struct{ Time time.Time }
			json.Unmarshal([]byte(l), &rec)
			inputAt = rec.Time
		}
	}
	if inputAt.IsZero() {
		t.Fatalf("no shell_input record of the marker:\n%s", e.auditLog())
	}
	if !inputAt.Before(time.UnixMicro(prodAt)) {
		t.Errorf("the marker's shell_input record (%v) is not before production evaluated it (%v)", inputAt, time.UnixMicro(prodAt))
	}
	t.Logf("marker on disk %v before production evaluated it", time.UnixMicro(prodAt).Sub(inputAt))
	e.waitAudit(`"event":"shell_output"`, `hello 42`, `"event":"shell_open"`)

	// bob revokes: the shell closes at once.
	r = e.ssh("bob", e.bobK, nil, "shell-revoke", id)
	if r.code != 0 || !strings.Contains(r.stdout, "1 live shells closed") {
		t.Errorf("shell-revoke: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	wait("the grant was revoked by bob; the shell is closed.", 10*time.Second)
	r = e.ssh("alice", e.aliceK, []string{"-tt"}, "shell", node)
	if r.code != 1 || !strings.Contains(r.stderr+r.stdout, "your grant "+id+" on "+node+" is revoked") {
		t.Errorf("a shell after revocation: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.waitAudit(`"event":"shell_close"`, `"event":"shell_revoke"`)

	// The transcript, as a reviewer replays it.
	var session string
	for _, l := range strings.Split(e.auditLog(), "\n") {
		if strings.Contains(l, `"event":"shell_open"`) && strings.Contains(l, `"decision":"allow"`) {
			var rec struct{ Session string }
			json.Unmarshal([]byte(l), &rec)
			session = rec.Session
		}
	}
	bin := beamtest.BuildBeamgate(t, t.TempDir())
	out, err := exec.Command(bin, "audit", "replay", session, "--file", e.auditP).CombinedOutput()
	if err != nil {
		t.Fatalf("audit replay %s: %v\n%s", session, err, out)
	}
	for _, want := range []string{"open  alice on " + node, "  >     application:set_env(kernel, " + marker, "  <     hello 42", "close the grant was revoked by bob (4 expressions)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the replay lacks %q:\n%s", want, out)
		}
	}
	t.Logf("audit replay:\n%s", out)

	// Offboarded mid-shell: the revocation cuts her connection, and the
	// shell with it.
	r = e.ssh("alice", e.aliceK, nil, "shell-request", node, "--reason", "second", "try")
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	id2 := lines[len(lines)-1]
	if r = e.ssh("bob", e.bobK, nil, "shell-approve", id2); r.code != 0 {
		t.Fatalf("second approval: %s%s", r.stdout, r.stderr)
	}
	tm2 := beamtest.StartTmux(t, 160, 40, sshCmd+"; echo SSH-EXITED; sleep 60")
	if screen, ok := tm2.WaitFor(30*time.Second, func(s string) bool { return strings.Contains(s, ")1>") }); !ok {
		t.Fatalf("second shell:\n%s", screen)
	}
	t0 := time.Now()
	rev.revoke(cookies.Revocation{ID: "r-alice", User: "alice", Reason: "left", Actor: "ops"})
	if screen, ok := tm2.WaitFor(10*time.Second, func(s string) bool { return strings.Contains(s, "SSH-EXITED") }); !ok {
		t.Fatalf("the shell survived alice's offboarding:\n%s", screen)
	}
	t.Logf("revocation to the shell's ssh exiting: %v (this test polls the list every 50 ms; Vault's watcher every 250 ms)", time.Since(t0).Round(time.Millisecond))

	hookMu.Lock()
	var events []string
	for _, h := range hooks {
		events = append(events, fmt.Sprint(h["event"]))
	}
	hookMu.Unlock()
	for _, want := range []string{"shell_request", "shell_approve", "shell_revoke"} {
		if !strings.Contains(strings.Join(events, " "), want) {
			t.Errorf("the webhook did not hear %s (heard %v)", want, events)
		}
	}
	noCookie(t, e.auditLog(), tm.Capture())
}

// quoteArgs quotes ssh arguments for a shell command line.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

// TestBreakGlassElixirShell: `shell NODE --elixir` on an Elixir production
// node evaluates with Elixir's evaluator, keeps variables, waits for the
// rest of an incomplete expression, and records each line before it runs.
func TestBreakGlassElixirShell(t *testing.T) {
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t)
	if _, err := exec.LookPath("elixir"); err != nil {
		t.Skip("elixir not installed")
	}
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	beamtest.StartProduction(t, beamtest.Options{Name: "prismatic@prod-01", Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd, Kind: beamtest.KindElixir})
	e := startGateway(t, withShellRoles(envOptions{
		dial: net.JoinHostPort("127.0.0.2", strconv.Itoa(prodEpmd)), realRelay: true,
	}))
	const node = "prismatic@prod-01"
	r := e.ssh("alice", e.aliceK, nil, "shell-request", node, "--reason", "elixir", "fix")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r = e.ssh("bob", e.bobK, nil, "shell-approve", lines[len(lines)-1]); r.code != 0 {
		t.Fatalf("approve: %s%s", r.stdout, r.stderr)
	}
	tm := beamtest.StartTmux(t, 160, 40, "ssh -tt "+strings.Join(quoteArgs(e.sshArgs("alice", e.aliceK)), " ")+" shell "+node+" --elixir; sleep 60")
	wait := func(want string) {
		t.Helper()
		if screen, ok := tm.WaitFor(30*time.Second, func(s string) bool { return strings.Contains(s, want) }); !ok {
			t.Fatalf("the shell never showed %q:\n%s", want, screen)
		}
	}
	wait(")1>")
	tm.SendKeys("x = 40 + 2", "Enter")
	wait(")2>")
	tm.SendKeys("Enum.map([1, 2], fn i ->", "Enter")
	tm.SendKeys("i * x + 1000 end)", "Enter")
	wait("[1042, 1084]")
	tm.SendKeys(`IO.puts("hi #{x}")`, "Enter")
	wait("hi 42")
	e.waitAudit(`"event":"shell_input"`, `x = 40 + 2`, `"event":"shell_output"`, `[1042, 1084]`)
}

// TestBreakGlassExpiry: on the gateway's clock a grant runs out; the open
// shell is told and closed, a new one is refused naming the expiry, and
// the expiry is audited once.
func TestBreakGlassExpiry(t *testing.T) {
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t)
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	beamtest.StartProduction(t, beamtest.Options{Name: "prismatic@prod-01", Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd})
	var mu sync.Mutex
	skew := time.Duration(0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(skew) }
	e := startGateway(t, withShellRoles(envOptions{
		dial: net.JoinHostPort("127.0.0.2", strconv.Itoa(prodEpmd)), realRelay: true,
		now: now, shellSweep: 200 * time.Millisecond,
	}))
	const node = "prismatic@prod-01"
	r := e.ssh("alice", e.aliceK, nil, "shell-request", node, "--reason", "expiry", "--for", "10m")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	id := lines[len(lines)-1]
	if r = e.ssh("bob", e.bobK, nil, "shell-approve", id); r.code != 0 {
		t.Fatalf("approve: %s%s", r.stdout, r.stderr)
	}
	tm := beamtest.StartTmux(t, 160, 40, "ssh -tt "+strings.Join(quoteArgs(e.sshArgs("alice", e.aliceK)), " ")+" shell "+node+"; sleep 60")
	if screen, ok := tm.WaitFor(30*time.Second, func(s string) bool { return strings.Contains(s, ")1>") }); !ok {
		t.Fatalf("shell:\n%s", screen)
	}
	mu.Lock()
	skew = 11 * time.Minute // the grant's 10 minutes are over
	mu.Unlock()
	if screen, ok := tm.WaitFor(15*time.Second, func(s string) bool {
		return strings.Contains(s, "expired") && strings.Contains(s, "the shell is closed")
	}); !ok {
		t.Fatalf("the open shell outlived its grant:\n%s", screen)
	}
	r = e.ssh("alice", e.aliceK, []string{"-tt"}, "shell", node)
	if r.code != 1 || !strings.Contains(r.stderr+r.stdout, "your grant "+id+" on "+node+" is expired") {
		t.Errorf("a shell after expiry: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	log := e.waitAudit(`"event":"shell_expire"`, `"reason":"the grant ran out"`)
	if n := strings.Count(log, `"event":"shell_expire"`); n != 1 {
		t.Errorf("%d shell_expire records, want 1", n)
	}
}

// withShellRoles gives alice role oncall (shell: request) and bob role
// lead (shell: approve) on prismatic, besides their usual roles.
func withShellRoles(o envOptions) envOptions {
	o.aliceRoles, o.bobRoles = "[observer, oncall]", "[billing, lead]"
	o.rolesYAML += "  oncall:\n    clusters: [prismatic]\n    policy: readonly\n    mode: enforce\n    shell: request\n" +
		"  lead:\n    clusters: [prismatic]\n    policy: readonly\n    mode: enforce\n    shell: approve\n"
	return o
}
