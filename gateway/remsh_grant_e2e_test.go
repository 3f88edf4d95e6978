package gateway

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
	"beamgate/internal/otp"
)

// TestRemshUnderGrant: a stock `erl -remsh` (and `iex --remsh`) through
// the recipe's tunnel, refused without a grant, opens under one: the
// expression typed is in the audit log (shell_input) before production
// evaluates it, output is recorded, and revoking the grant closes the
// remote shell. OTP 25 here; TestRemshUnderGrantOTP runs 27 and 29.
func TestRemshUnderGrant(t *testing.T) {
	t.Run("erl", func(t *testing.T) { remshFlow(t, "erl", false, beamtest.Options{}) })
	if _, err := exec.LookPath("iex"); err == nil {
		t.Run("iex", func(t *testing.T) { remshFlow(t, "iex", true, beamtest.Options{}) })
	}
}

// TestRemshUnderGrantOTP: the same with OTP 27 and 29 engineers (make
// matrix).
func TestRemshUnderGrantOTP(t *testing.T) {
	if !otp.Enabled() {
		t.Skipf("the OTP 27 and 29 releases run with %s=1 (make matrix)", otp.EnableEnv)
	}
	for _, rel := range otp.Releases[1:] {
		t.Run("erl"+rel, func(t *testing.T) { remshFlow(t, otp.Erl(t, rel), false, beamtest.Options{}) })
		// iex --remsh needs the same Elixir on production (1.15+ loads
		// its iex module there).
		t.Run("iex"+rel, func(t *testing.T) {
			remshFlow(t, otp.Iex(t, rel), true, beamtest.Options{Elixir: otp.Elixir(t, rel)})
		})
	}
}

// remshFlow runs the flow with the engineer's launcher bin (erl, or iex
// when elixir), production started with prodOpts' Erl and Elixir.
func remshFlow(t *testing.T, bin string, elixir bool, prodOpts beamtest.Options) {
	beamtest.RequireErl(t)
	beamtest.RequireTmux(t)
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	po := beamtest.Options{Name: "prismatic@prod-01", Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd, Erl: prodOpts.Erl, Elixir: prodOpts.Elixir}
	if elixir {
		po.Kind = beamtest.KindElixir // iex --remsh needs IEx on the node
	}
	prod := beamtest.StartProduction(t, po)
	free := []string{"127.0.0.1", "127.77.2.1"}
	epmdLocal, gwPort := beamtest.FreePortOn(t, free...), beamtest.FreePortOn(t, free...)
	e := startGateway(t, withShellRoles(envOptions{
		dial: "127.0.0.2:" + strconv.Itoa(prodEpmd), gatewayPort: gwPort, realRelay: true,
		extraYAML: "engineer_epmd_port: " + strconv.Itoa(epmdLocal-1) + "\n",
	}))
	const node = "prismatic@prod-01"
	r := e.ssh("alice", e.aliceK, nil, "recipe", "prismatic")
	if r.code != 0 {
		t.Fatalf("recipe: %s", r.stderr)
	}
	port, _ := strconv.Atoi(e.port)
	beamtest.StartRecipeForward(t, beamtest.RecipeLine(t, r.stdout, "ssh -N"), port, e.aliceK)
	home := t.TempDir()
	env := beamtest.RecipeEnv(t, r.stdout, home)
	cookie := e.gw.Cookie("alice", time.Now())
	remsh := func(name string) *beamtest.Tmux {
		script := filepath.Join(t.TempDir(), "remsh.sh")
		var b strings.Builder
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			b.WriteString("export " + k + "='" + v + "'\n")
		}
		launch := bin + " -sname " + name + " -connect_all false -setcookie " + cookie + " -remsh " + node
		if elixir {
			launch = bin + " --sname " + name + " --erl \"-connect_all false\" --cookie " + cookie + " --remsh " + node
		}
		b.WriteString("cd " + home + "\n" + launch + "\necho remsh-exited-$?\nsleep 60\n")
		os.WriteFile(script, []byte(b.String()), 0o700)
		return beamtest.StartTmux(t, 200, 50, "sh "+script)
	}
	// Without a grant: refused at once, naming shell-request.
	m := remsh("rsh0")
	if screen := m.WaitContains(20*time.Second, "remsh-exited-"); !strings.Contains(screen, "shell-request NODE --reason TEXT") {
		t.Fatalf("remsh without a grant:\n%s", screen)
	}

	r = e.ssh("alice", e.aliceK, nil, "shell-request", node, "--reason", "stock", "remsh")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	id := lines[len(lines)-1]
	if r = e.ssh("bob", e.bobK, nil, "shell-approve", id); r.code != 0 {
		t.Fatalf("approve: %s%s", r.stdout, r.stderr)
	}
	m = remsh("rsh1")
	denies := func() {
		for _, l := range strings.Split(e.auditLog(), "\n") {
			if strings.Contains(l, `"decision":"deny"`) {
				t.Log(l)
			}
		}
	}
	if screen, ok := m.WaitFor(30*time.Second, func(s string) bool { return strings.Contains(s, "("+node+")1>") }); !ok {
		denies()
		t.Fatalf("remsh under a grant:\n%s", screen)
	}
	marker := "bg_remsh_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if elixir {
		m.SendKeys(":application.set_env(:kernel, :"+marker+", :os.system_time(:microsecond)); :"+marker, "Enter")
	} else {
		m.SendKeys("application:set_env(kernel, "+marker+", os:system_time(microsecond)), "+marker+".", "Enter")
	}
	if _, ok := m.WaitFor(20*time.Second, func(s string) bool { return strings.Contains(s, ")2>") }); !ok {
		denies()
		t.Fatalf("the expression did not complete:\n%s", m.Capture())
	}
	at, err := strconv.ParseInt(prod.Eval(t, "element(2, application:get_env(kernel, "+marker+"))"), 10, 64)
	if err != nil {
		t.Fatalf("the marker did not run on production:\n%s", m.Capture())
	}
	log := e.waitAudit(`"event":"shell_open"`, `"event":"shell_input"`, marker)
	var inputAt time.Time
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"event":"shell_input"`) && strings.Contains(l, marker) {
			inputAt = recordTime(t, l)
			break
		}
	}
	if inputAt.IsZero() {
		t.Logf("audit:\n%s", log)
	}
	if inputAt.IsZero() || !inputAt.Before(time.UnixMicro(at)) {
		t.Errorf("the remsh input record (%v) is not before production evaluated it (%v)", inputAt, time.UnixMicro(at))
	}
	t.Logf("remsh marker on disk %v before production evaluated it", time.UnixMicro(at).Sub(inputAt))
	e.waitAudit(`"event":"shell_output"`)
	// The production cookie never lands in a record, even printed by a
	// granted shell.
	if elixir {
		m.SendKeys(":erlang.get_cookie()", "Enter")
	} else {
		m.SendKeys("erlang:get_cookie().", "Enter")
	}
	e.waitAudit(`[cookie]`)

	// Revoked: the remote shell is closed.
	if r = e.ssh("bob", e.bobK, nil, "shell-revoke", id); r.code != 0 {
		t.Fatalf("revoke: %s%s", r.stdout, r.stderr)
	}
	e.waitAudit(`"event":"shell_close"`, "is no longer active; the remote shell is closed")
	noCookie(t, e.auditLog())
}

func recordTime(t *testing.T, line string) time.Time {
	t.Helper()
	i := strings.Index(line, `"time":"`)
	if i < 0 {
		return time.Time{}
	}
	rest := line[i+8:]
	ts, err := time.Parse(time.RFC3339Nano, rest[:strings.IndexByte(rest, '"')])
	if err != nil {
		return time.Time{}
	}
	return ts
}
