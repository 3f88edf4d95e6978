package main

// Tests of the ops listener (ops.listen, package gateway/ops): its
// configuration, its wiring in assemble, and a real Prometheus scraping
// a real `beamgate serve` while a real erl engineer node makes an allowed
// and a refused call through real OpenSSH.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"beamgate/cookies"
	"beamgate/gateway/config"
	"beamgate/internal/beamtest"
)

// opsWait bounds each wait of the ops tests (a listener, a scrape, a query).
const opsWait = 60 * time.Second

var opsClient = &http.Client{Timeout: 10 * time.Second}

// opsGet fetches url and returns the status and body.
func opsGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := opsClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestOpsConfig: ops.listen is optional (off by default) and must be
// host:port with a real port, not the SSH listen address.
func TestOpsConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(beamtest.ExampleConfig), t.TempDir())
	if err != nil || cfg.Ops.Listen != "" {
		t.Fatalf("without ops: %v %+v", err, cfg.Ops)
	}
	for _, ok := range []string{"127.0.0.1:9464", ":9464", "[::1]:9464", "0.0.0.0:9464", "localhost:9464"} {
		cfg, err := config.Parse([]byte(beamtest.ExampleConfig+"ops:\n  listen: \""+ok+"\"\n"), t.TempDir())
		if err != nil || cfg.Ops.Listen != ok {
			t.Errorf("ops.listen %q: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"9464":           `ops.listen: "9464" is not host:port`,
		"127.0.0.1":      `ops.listen: "127.0.0.1" is not host:port`,
		"127.0.0.1:0":    `ops.listen: port "0" is not a TCP port`,
		"127.0.0.1:http": `ops.listen: port "http" is not a TCP port`,
		"bad host:9464":  `ops.listen: host "bad host" is neither`,
		"127.0.0.1:2222": `is also listen, the SSH front door's address`,
	} {
		_, err := config.Parse([]byte(beamtest.ExampleConfig+"ops:\n  listen: \""+bad+"\"\n"), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ops.listen %q: %v, want %q", bad, err, want)
		}
	}
	if _, err := config.Parse([]byte(beamtest.ExampleConfig+"ops:\n  listne: x\n"), t.TempDir()); err == nil || !strings.Contains(err.Error(), "ops.listne") {
		t.Errorf("unknown ops key: %v", err)
	}
}

// TestAssembleOps: with ops.listen, assemble serves /livez, /readyz (the
// audit check) and /metrics once the gateway is built, /readyz fails
// once draining, and Close closes the listener; a busy ops port fails
// assemble before anything is written.
func TestAssembleOps(t *testing.T) {
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", beamtest.FreePort(t))
	path := filepath.Join(dir, "beamgate.yaml")
	os.WriteFile(path, []byte(beamtest.ExampleConfig+"ops:\n  listen: "+addr+"\n"), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(cfg.Cookies.File), 0o700)
	cookies.WriteFile(cfg.Cookies.File, map[string]string{"prismatic": "X"})

	busy, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := assemble(cfg, nil); err == nil || !strings.Contains(err.Error(), "ops.listen "+addr) {
		t.Fatalf("busy ops port: %v", err)
	}
	if _, err := os.Stat(cfg.Audit.Path); !os.IsNotExist(err) {
		t.Errorf("assemble wrote the audit log before failing on the ops port: %v", err)
	}
	busy.Close()

	svc, err := assemble(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			svc.Close()
		}
	}()
	base := "http://" + addr
	if code, body := opsGet(t, base+"/livez"); code != 200 || body != "ok\n" {
		t.Errorf("/livez: %d %q", code, body)
	}
	// Assembled, not serving yet: not ready. serveUntil marks it
	// listening once the SSH listener is open.
	if code, body := opsGet(t, base+"/readyz"); code != 503 || body != "starting: the SSH listener is not open yet\n" {
		t.Errorf("/readyz before listening: %d %q", code, body)
	}
	svc.listening.Store(true)
	if code, body := opsGet(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, body := opsGet(t, base+"/metrics"); code != 200 || !strings.Contains(body, "beamgate_build_info{") ||
		!strings.Contains(body, "beamgate_audit_append_seconds_bucket") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	svc.SetDraining()
	if code, body := opsGet(t, base+"/readyz"); code != 503 || body != "draining: the gateway is shutting down\n" {
		t.Errorf("/readyz draining: %d %q", code, body)
	}
	if err := svc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	closed = true
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the ops listener still accepts after Close")
	}
}

// promResult is one series of a Prometheus instant query.
type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

// promQuery runs an instant query against Prometheus' HTTP API.
func promQuery(t *testing.T, base, query string) []promResult {
	t.Helper()
	code, body := opsGet(t, base+"/api/v1/query?query="+url.QueryEscape(query))
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promResult `json:"result"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Status != "success" {
		t.Fatalf("query %s: %d %s", query, code, body)
	}
	return r.Data.Result
}

// TestOpsPrometheus runs `beamgate serve` with ops.listen in front of a
// real production node, makes one allowed (erlang:node/0) and one refused
// (ets:insert/2, rule ets.write, mode enforce) rpc:call from a real erl
// engineer node through real ssh -N -L, lets a real Prometheus scrape the
// ops listener, and finds both decisions through Prometheus' query API.
// Then SIGTERM: /readyz says the gateway is draining while it drains.
func TestOpsPrometheus(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian: apt-get install prometheus, /usr/bin/prometheus); it scrapes the ops listener in this test")
	}
	opsAddr := fmt.Sprintf("127.0.0.1:%d", beamtest.FreePortOn(t, "127.0.0.1"))
	e := newFaultEnv(t, "audit:\n  path: ./state/audit/audit.jsonl\nops:\n  listen: "+opsAddr)
	// An enforce role: the write is refused, not passed and flagged.
	data, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "mode: audit") {
		t.Fatalf("the fault environment's configuration changed:\n%s", data)
	}
	if err := os.WriteFile(e.cfg, []byte(strings.Replace(string(data), "mode: audit", "mode: enforce", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.startServe(t)
	beamtest.WaitListening(t, opsAddr, e.serve.exited, e.allServeLogs)
	ops := "http://" + opsAddr
	if code, body := opsGet(t, ops+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz of a started gateway: %d %q\n%s", code, body, e.allServeLogs())
	}

	e.cookie = e.login(t)
	e.startForward(t)
	e.eng = beamtest.Start(t, beamtest.Options{Name: "eng@127.0.0.1", Cookie: e.cookie, EpmdPort: e.ep,
		LongNames: true, Hidden: true})
	prod := "'" + faultProdNode + "'"
	if got := e.eng.Eval(t, "rpc:call("+prod+", erlang, node, [], 10000)"); got != prod {
		t.Fatalf("allowed call erlang:node/0 = %s\ngateway:\n%s", got, e.allServeLogs())
	}
	if got := e.eng.Eval(t, "rpc:call("+prod+", ets, insert, [beamgate_count, {n, 999}], 10000)"); !strings.Contains(got, "beamgate_denied") || !strings.Contains(got, "ets.write") {
		t.Fatalf("refused call ets:insert/2 = %s\ngateway:\n%s", got, e.allServeLogs())
	}
	if got := e.prod.Eval(t, "ets:lookup_element(beamgate_count, n, 2)"); got != "0" {
		t.Fatalf("the refused write reached production: counter %s", got)
	}

	// A real Prometheus, on loopback, with its own directory.
	pdir := t.TempDir()
	promAddr := fmt.Sprintf("127.0.0.1:%d", beamtest.FreePortOn(t, "127.0.0.1"))
	promCfg := filepath.Join(pdir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: beamgate
    static_configs:
      - targets: ['%s']
`, opsAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startFaultProc(t, prom, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(pdir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	beamtest.WaitListening(t, promAddr, p.exited, p.out.String)
	pbase := "http://" + promAddr
	// Prometheus listens before its storage is open and answers 503 until
	// then: wait for /-/ready.
	deadline := time.Now().Add(opsWait)
	for {
		code, _ := opsGet(t, pbase+"/-/ready")
		if code == 200 {
			break
		}
		if p.done() || time.Now().After(deadline) {
			t.Fatalf("prometheus never ready (last %d):\n%s", code, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	deadline = time.Now().Add(opsWait)
	var got []promResult
	for {
		got = promQuery(t, pbase, "beamgate_decisions_total")
		var allow, deny bool
		for _, r := range got {
			allow = allow || r.Metric["decision"] == "allow" && r.Metric["rule"] == "net.identity"
			deny = deny || r.Metric["decision"] == "deny" && r.Metric["rule"] == "ets.write"
		}
		if allow && deny {
			break
		}
		if p.done() {
			t.Fatalf("prometheus exited:\n%s", p.out.String())
		}
		if time.Now().After(deadline) {
			up := promQuery(t, pbase, "up")
			t.Fatalf("Prometheus has no allow and ets.write deny series after %v: %+v\nup: %+v\nprometheus:\n%s", opsWait, got, up, p.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, r := range got {
		for l := range r.Metric {
			switch l {
			case "__name__", "job", "instance", "decision", "rule":
			default:
				t.Errorf("beamgate_decisions_total series with label %s: %v", l, r.Metric)
			}
		}
		if r.Metric["decision"] == "deny" && r.Metric["rule"] == "ets.write" && (len(r.Value) != 2 || r.Value[1] != "1") {
			t.Errorf("one refused ets:insert counted as %v", r.Value)
		}
	}
	t.Logf("beamgate_decisions_total in Prometheus: %+v", got)
	for _, q := range []string{`beamgate_sessions_active`, `beamgate_ssh_connections_active`, `beamgate_sessions_total{result="started"}`} {
		if r := promQuery(t, pbase, q); len(r) != 1 || len(r[0].Value) != 2 || r[0].Value[1] != "1" {
			t.Errorf("%s = %+v, want 1", q, r)
		}
	}

	// The session is still live: its bytes are counted already.
	for _, dir := range []string{"e2p", "p2e"} {
		q := `beamgate_relay_bytes_total{direction="` + dir + `"}`
		r := promQuery(t, pbase, q)
		if len(r) != 1 || len(r[0].Value) != 2 || r[0].Value[1] == "0" {
			t.Errorf("%s during a live session = %+v, want more than 0", q, r)
		}
	}

	// SIGTERM: while the gateway drains (alice's ssh -N holds it open for
	// up to shutdown_grace), /readyz fails naming the drain and /livez
	// still passes.
	if err := e.serve.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // within shutdown_grace's default
	defer cancel()
	for {
		resp, err := opsClient.Get(ops + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 503 && string(b) == "draining: the gateway is shutting down\n" {
				if code, body := opsGet(t, ops+"/livez"); code != 200 || body != "ok\n" {
					t.Errorf("/livez while draining: %d %q", code, body)
				}
				break
			}
		}
		if ctx.Err() != nil || e.serve.done() {
			t.Fatalf("/readyz never said draining after SIGTERM (last: %v)\n%s", err, e.allServeLogs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Ending alice's ssh -N ends the drain.
	e.fwd.signal(syscall.SIGKILL)
	if !e.serve.signal(syscall.SIGTERM) {
		t.Errorf("beamgate serve did not exit after SIGTERM and the last connection's end\n%s", e.allServeLogs())
	}
}
