package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// viewEnv is a gateway with the real relay (and so the production cookie
// store) in front of a real production node prismatic@prod-01 on
// 127.0.0.2, carrying known load.
type viewEnv struct {
	*gatewayEnv
	prod *beamtest.Production
}

// viewNode is the production node of the view tests.
const viewNode = "prismatic@prod-01"

// plantLoad registers mailbox_hog, whose mailbox starts at 5000 messages
// and grows every few milliseconds, fed by mailbox_feeder.
const plantLoad = `
Parent = self(),
Hog = spawn(fun() -> register(mailbox_hog, self()), Parent ! {self(), ready},
    receive never_sent_stop -> ok end end),
receive {Hog, ready} -> ok end,
[Hog ! {work, N} || N <- lists:seq(1, 5000)],
spawn(fun() -> register(mailbox_feeder, self()),
    F = fun F(N) -> Hog ! {work, N}, timer:sleep(5), F(N + 1) end, F(0) end),
ok.
`

func startViewEnv(t *testing.T) *viewEnv {
	t.Helper()
	return startViewEnvWith(t, "")
}

// startViewEnvWith is startViewEnv with extraYAML added to the
// gateway's configuration.
func startViewEnvWith(t *testing.T, extraYAML string) *viewEnv {
	t.Helper()
	beamtest.RequireErl(t)
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	prod := beamtest.StartProduction(t, beamtest.Options{
		Name: viewNode, Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd,
	})
	if got := prod.Eval(t, plantLoad); got != "ok" {
		t.Fatalf("plant load: %s", got)
	}
	e := startGateway(t, envOptions{
		dial:      net.JoinHostPort("127.0.0.2", strconv.Itoa(prodEpmd)),
		realRelay: true,
		extraYAML: extraYAML,
	})
	return &viewEnv{gatewayEnv: e, prod: prod}
}

// noCookie fails the test if the production cookie is in any of outs.
func noCookie(t *testing.T, outs ...string) {
	t.Helper()
	for _, o := range outs {
		if strings.Contains(o, prodCookie) {
			t.Fatalf("the production cookie leaked:\n%s", o)
		}
	}
}

// TestViewsThroughSSH runs the text views with the real OpenSSH client
// against a real production node.
func TestViewsThroughSSH(t *testing.T) {
	e := startViewEnv(t)
	var seen []string // everything the engineer's side saw
	ssh := func(t *testing.T, opts []string, cmd ...string) sshResult {
		t.Helper()
		r := e.withT(t).ssh("alice", e.aliceK, opts, cmd...)
		seen = append(seen, r.stdout, r.stderr)
		return r
	}

	t.Run("top json", func(t *testing.T) {
		r := ssh(t, nil, "top", viewNode, "--by", "message_queue_len", "-n", "5", "--json")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		var top struct {
			By   string `json:"by"`
			Rows []struct {
				Pid   string `json:"pid"`
				Name  string `json:"name"`
				Value int64  `json:"value"`
			} `json:"rows"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &top); err != nil {
			t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
		}
		if top.By != "message_queue_len" || len(top.Rows) == 0 || len(top.Rows) > 5 {
			t.Fatalf("top = %+v", top)
		}
		if top.Rows[0].Name != "mailbox_hog" || top.Rows[0].Value < 5000 {
			t.Errorf("first row = %+v, want mailbox_hog with at least 5000 messages", top.Rows[0])
		}
	})

	t.Run("top text", func(t *testing.T) {
		r := ssh(t, nil, "top", viewNode, "--by", "memory", "-n", "10")
		if r.code != 0 || !strings.Contains(r.stdout, "PID") || strings.Count(r.stdout, "\n") < 3 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("ets", func(t *testing.T) {
		r := ssh(t, nil, "ets", viewNode)
		if r.code != 0 || !strings.Contains(r.stdout, beamtest.OrdersTable) {
			t.Fatalf("ets: exit %d, want %s listed\n%s%s", r.code, beamtest.OrdersTable, r.stdout, r.stderr)
		}
	})

	t.Run("stats", func(t *testing.T) {
		r := ssh(t, nil, "stats", viewNode)
		if r.code != 0 || r.stdout == "" {
			t.Fatalf("stats: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = ssh(t, nil, "stats", viewNode, "--json")
		var m map[string]any
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil {
			t.Fatalf("stats --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("info and binaries", func(t *testing.T) {
		r := ssh(t, nil, "info", viewNode, "mailbox_hog")
		if r.code != 0 || !strings.Contains(r.stdout, "mailbox_hog") {
			t.Errorf("info: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = ssh(t, nil, "binaries", viewNode, "-n", "10", "--json")
		var m map[string]any
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil {
			t.Errorf("binaries --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("apps", func(t *testing.T) {
		r := ssh(t, nil, "apps", viewNode)
		if r.code != 0 || !strings.Contains(r.stdout, "kernel_sup") {
			t.Errorf("apps: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		// readonly refuses supervisor:get_childspec/2 to engineers; the
		// view reads child specs itself, keeping the restart type only.
		if !regexp.MustCompile(`kernel_safe_sup\s+<[0-9.]+>\s+kernel_safe_sup\s+supervisor\s+permanent`).MatchString(r.stdout) {
			t.Errorf("apps does not show restart types:\n%s", r.stdout)
		}
		e.waitAudit(`"rule":"view.childspec_redacted"`, `"kept":"restart"`)
	})

	t.Run("refusals", func(t *testing.T) {
		r := ssh(t, nil, "stats", "billing@bill-01")
		if r.code != 1 || !strings.Contains(r.stderr, "view.node_not_granted") || !strings.Contains(r.stderr, "your nodes: "+viewNode) {
			t.Errorf("node outside the grant: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
		}
		r = ssh(t, nil, "top")
		if r.code != 1 || !strings.Contains(r.stderr, "usage: top NODE") {
			t.Errorf("no node: exit %d %q", r.code, r.stderr)
		}
		r = ssh(t, nil, "top", viewNode, "--watch", "2s")
		if r.code != 1 || !strings.Contains(r.stderr, "ssh -t") {
			t.Errorf("--watch without a PTY: exit %d %q", r.code, r.stderr)
		}
		r = ssh(t, []string{"-tt"}, "top", viewNode, "--watch", "500ms")
		if r.code != 1 || !strings.Contains(r.stderr+r.stdout, "under 1s") {
			t.Errorf("--watch 500ms: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
		}
		r = ssh(t, nil, "top", viewNode, "--by", "nonsense")
		if r.code != 1 || !strings.Contains(r.stderr, "want one of") {
			t.Errorf("bad --by: exit %d %q", r.code, r.stderr)
		}
	})

	t.Run("json watch without a PTY", func(t *testing.T) {
		// --json --watch needs no terminal: one JSON line per refresh.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args := append(e.sshArgs("alice", e.aliceK), "top", viewNode, "--by", "message_queue_len", "-n", "3", "--json", "--watch", "1s")
		cmd := exec.CommandContext(ctx, "ssh", args...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer cmd.Process.Kill()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var queues []int64
		for len(queues) < 2 && sc.Scan() {
			seen = append(seen, sc.Text())
			var top struct {
				Rows []struct {
					Name  string `json:"name"`
					Value int64  `json:"value"`
				} `json:"rows"`
			}
			if err := json.Unmarshal(sc.Bytes(), &top); err != nil || len(top.Rows) == 0 || top.Rows[0].Name != "mailbox_hog" {
				t.Fatalf("refresh line %q: %v", sc.Text(), err)
			}
			queues = append(queues, top.Rows[0].Value)
		}
		if len(queues) != 2 || queues[1] <= queues[0] {
			t.Errorf("mailbox_hog queues over two refreshes = %v, want growing", queues)
		}
		// Killing ssh closes the channel: the watch stops and frees the
		// user's slot on the node.
		cmd.Process.Kill()
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := ssh(t, nil, "stats", viewNode)
			if r.code == 0 {
				break
			}
			if !strings.Contains(r.stderr, "view.per_user_per_node") || time.Now().After(deadline) {
				t.Fatalf("view after the watch's ssh was killed: exit %d %q", r.code, r.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("help", func(t *testing.T) {
		r := ssh(t, nil, "help")
		if r.code != 0 || !strings.Contains(r.stdout, "binaries NODE") || !strings.Contains(r.stdout, "does NOT garbage-collect") {
			t.Errorf("help: exit %d\n%s", r.code, r.stdout)
		}
	})

	log := e.waitAudit(`"event":"command"`, `"op":"top prismatic@prod-01 --by message_queue_len -n 5 --json"`,
		`"event":"view"`, `"rule":"view.node_not_granted"`, `"op":"stats billing@bill-01"`)
	for _, want := range []string{`"user":"alice"`, `"target":"prismatic@prod-01"`, `"cluster":"prismatic"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if os.Getenv("VIEWS_DUMP") != "" {
		t.Log(log)
	}
	noCookie(t, append(seen, log)...)
}

// TestViewsWatchInTmux runs top --watch 1s through a real ssh -t in a
// tmux pane, captures the screen twice and shows it redrawn in place with
// a later refresh and a longer mailbox. While it runs, the same user runs
// a second view on the same node (limits.views_per_node is 2 here); a
// third is refused while two watches run; Ctrl-C ends the watch and frees
// its slot.
func TestViewsWatchInTmux(t *testing.T) {
	beamtest.RequireTmux(t)
	e := startViewEnvWith(t, "limits:\n  views_per_node: 2\n")
	args := append([]string{"ssh", "-t"}, e.sshArgs("alice", e.aliceK)...)
	args = append(args, "top", viewNode, "--by", "message_queue_len", "-n", "5", "--watch", "1s")
	cmdline := strings.Join(args, " ") + "; echo ssh-exited-$?; sleep 60"
	tm := beamtest.StartTmux(t, 200, 50, cmdline)

	// waitRefresh waits (bounded) for a screen showing a refresh after
	// `after` and mailbox_hog's row.
	waitRefresh := func(after int) (string, int) {
		t.Helper()
		screen, n, ok := tm.WaitRefresh(30*time.Second, after, "mailbox_hog")
		if !ok {
			t.Fatalf("no refresh after %d on screen:\n%s\naudit:\n%s", after, screen, e.auditLog())
		}
		return screen, n
	}
	first, n1 := waitRefresh(0)
	time.Sleep(2500 * time.Millisecond)
	second, n2 := waitRefresh(n1)
	t.Logf("first capture (refresh %d):\n%s", n1, strings.TrimRight(first, "\n "))
	t.Logf("second capture (refresh %d):\n%s", n2, strings.TrimRight(second, "\n "))
	beamtest.CheckRedrawnInPlace(t, "every 1s, refresh", first, second)
	if q1, q2 := beamtest.RowValue(t, first, "mailbox_hog"), beamtest.RowValue(t, second, "mailbox_hog"); q2 <= q1 {
		t.Errorf("mailbox_hog's queue did not grow between captures: %d then %d", q1, q2)
	}

	// Two views at once: stats runs beside the watch.
	if r := e.ssh("alice", e.aliceK, nil, "stats", viewNode); r.code != 0 {
		t.Errorf("a second view beside the watch: exit %d\n%s", r.code, r.stderr)
	}
	// A second watch (JSON lines, no PTY) takes the other slot; a third
	// view is then refused, naming the limit.
	w2 := exec.Command("ssh", append(e.sshArgs("alice", e.aliceK), "stats", viewNode, "--watch", "1s", "--json")...)
	w2out, _ := w2.StdoutPipe()
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w2.Process.Kill(); w2.Wait() })
	if !bufio.NewScanner(w2out).Scan() {
		t.Fatal("the second watch printed nothing")
	}
	r := e.ssh("alice", e.aliceK, nil, "stats", viewNode)
	if r.code != 1 || !strings.Contains(r.stderr, "view.per_user_per_node") || !strings.Contains(r.stderr, "you already run 2 views") {
		t.Errorf("third concurrent view: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	w2.Process.Kill()
	w2.Wait()

	// Ctrl-C (a byte through the PTY) ends the watch and ssh exits 0.
	tm.SendKeys("C-c")
	last := tm.WaitContains(20*time.Second, "ssh-exited-")
	if !strings.Contains(last, "ssh-exited-0") {
		t.Fatalf("ssh did not exit 0 after Ctrl-C:\n%s", last)
	}
	// The slot is free again.
	r = e.ssh("alice", e.aliceK, nil, "stats", viewNode)
	if r.code != 0 {
		t.Errorf("view after the watch ended: exit %d\n%s", r.code, r.stderr)
	}
	log := e.waitAudit(`"op":"top prismatic@prod-01 --by message_queue_len -n 5 --watch 1s"`, `"rule":"view.per_user_per_node"`)
	noCookie(t, first, second, last, r.stdout, r.stderr, log)
}
