package gateway

import (
	"beamgate/internal/beamtest"
	"beamgate/policy"

	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/config"
	"beamgate/gateway/relay"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
)

// prodCookie is the production cookie of the test clusters: it must never
// appear in anything the engineer's side sees, nor in the audit log.
const prodCookie = "PRODUCTIONCOOKIEMUSTNOTLEAK"

// gatewayEnv is an in-process gateway reached by the real OpenSSH client.
type gatewayEnv struct {
	t      *testing.T
	dir    string
	srv    *Server
	addr   string // 127.0.0.1:port
	port   string
	cfg    *config.Config
	gw     cookies.Gateway
	auditP string
	aliceK string // alice's private key path
	bobK   string
	relay  *fakeRelay
}

// fakeRelay records what the front door hands to the relay.
type fakeRelay struct {
	block chan struct{} // if set, Serve holds the session until it closes
	mu    sync.Mutex
	calls []relay.Engineer
	tgts  []relay.Target
}

func (f *fakeRelay) Serve(ctx context.Context, eng relay.Engineer, t relay.Target, conn net.Conn) error {
	f.mu.Lock()
	f.calls = append(f.calls, eng)
	f.tgts = append(f.tgts, t)
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
		}
	}
	conn.Write([]byte("relay:" + t.Name + "\n"))
	return conn.Close()
}

// CloseUser has no sessions to end: Serve's sessions end with their
// SSH connection, which the front door closes itself.
func (f *fakeRelay) CloseUser(user, reason string) int { return 0 }

func (f *fakeRelay) Reconcile(func(relay.Engineer, relay.Target) relay.Keep) (int, int) { return 0, 0 }

// KnownAtoms is a private set per call.
func (f *fakeRelay) KnownAtoms(target string) *policy.AtomSet { return policy.NewAtomSet(1000) }

type envOptions struct {
	dial      string // node prismatic@prod-01's dial address
	extraYAML string
	caPub     string
	// gatewayPort is prismatic@prod-01's gateway port (default 4370).
	gatewayPort int
	// realRelay wires the real relay with the file cookie store.
	realRelay bool
	// revocations, when set, is the revocation list the server enforces,
	// polled every 50 ms, failing closed after revStale.
	revocations RevocationSource
	revStale    time.Duration
	// sink, when set, wraps the audit log the server writes to.
	sink func(*audit.Log) audit.Sink
	// clustersYAML is added under clusters: (indented by four spaces per
	// level, as the default ones); rolesYAML under roles:. aliceRoles
	// replaces alice's [observer]. Extra clusters get prodCookie.
	clustersYAML, rolesYAML, aliceRoles string
	bobRoles                            string // replaces bob's [billing]
	// now, when set, is the front door's clock (Options.Now); shellSweep
	// its break-glass expiry sweep interval.
	now        func() time.Time
	shellSweep time.Duration
}

func startGateway(t *testing.T, o envOptions) *gatewayEnv {
	t.Helper()
	beamtest.RequireOpenSSH(t)
	dir := t.TempDir()
	e := &gatewayEnv{t: t, dir: dir}
	e.aliceK = beamtest.NewSSHKey(t, dir, "alice")
	e.bobK = beamtest.NewSSHKey(t, dir, "bob")
	if o.dial == "" {
		o.dial = "127.0.0.2:1"
	}
	if o.gatewayPort == 0 {
		o.gatewayPort = 4370
	}
	if o.aliceRoles == "" {
		o.aliceRoles = "[observer]"
	}
	if o.bobRoles == "" {
		o.bobRoles = "[billing]"
	}
	ca := "[]"
	if o.caPub != "" {
		ca = "[" + strconv.Quote(o.caPub) + "]"
	}
	yaml := fmt.Sprintf(`
listen: 127.0.0.1:0
host_key: ./ssh_host_ed25519_key
audit:
  path: ./audit.jsonl
cookies:
  backend: file
  file: ./cookies.yaml
cookie_window: 1h
clusters:
  prismatic:
    nodes:
      - name: prismatic@prod-01
        dial: %s
        gateway_port: %d
  billing:
    nodes:
      - name: billing@bill-01
        dial: 127.0.0.3:1
        gateway_port: 4380
%susers:
  alice:
    keys: [%q]
    roles: %s
  bob:
    keys: [%q]
    roles: %s
user_ca_keys: %s
roles:
  observer:
    clusters: [prismatic]
    policy: readonly
    mode: enforce
  billing:
    clusters: [billing]
    policy: readonly
    mode: enforce
%s%s`, o.dial, o.gatewayPort, o.clustersYAML, beamtest.PublicKey(t, e.aliceK), o.aliceRoles, beamtest.PublicKey(t, e.bobK), o.bobRoles, ca, o.rolesYAML, o.extraYAML)
	cfgPath := filepath.Join(dir, "beamgate.yaml")
	os.WriteFile(cfgPath, []byte(yaml), 0o600)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	prodCookies := map[string]string{"prismatic": prodCookie, "billing": prodCookie + "2"}
	for cl := range cfg.Clusters {
		if _, ok := prodCookies[cl]; !ok {
			prodCookies[cl] = prodCookie
		}
	}
	if err := cookies.WriteFile(cfg.Cookies.File, prodCookies); err != nil {
		t.Fatal(err)
	}
	store, err := cookies.NewFileStore(cfg.Cookies.File)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := LoadOrCreateHostKey(cfg.HostKey)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := cookies.LoadOrCreateSecret(cfg.GatewaySecretFile)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = cookies.Gateway{Secret: secret, Window: cfg.CookieWindow}
	e.auditP = cfg.Audit.Path
	alog, err := audit.Open(cfg.Audit.Path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Operational logs go to the test log and to a buffer checked for
	// cookies at the end.
	logBuf := &beamtest.SyncBuffer{}
	log := zaptest.NewLogger(t).WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewTee(c, zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logBuf), zap.DebugLevel))
	}))
	var sink audit.Sink = alog
	if o.sink != nil {
		sink = o.sink(alog)
	}
	// As the composition root does: the relay writes through Recent too.
	recent := NewRecent(sink, nil)
	var rl Relayer
	if o.realRelay {
		rl = relay.New(relay.Config{Audit: recent, Cookies: store, Log: log})
	} else {
		e.relay = &fakeRelay{}
		rl = e.relay
	}
	var views cookies.Source // views need production: on with the real relay only
	if o.realRelay {
		views = store
	}
	srv, err := NewServer(Options{Config: cfg, HostSigner: signer, Gateway: e.gw, Audit: recent, Recent: recent, Relay: rl, Cookies: views, Log: log,
		Revocations: o.revocations, RevocationInterval: 50 * time.Millisecond, RevocationStaleLimit: o.revStale,
		Shells: cookies.FileDoc(cfg.BreakGlass.File), Now: o.now, ShellSweep: o.shellSweep})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	_, e.port, _ = net.SplitHostPort(e.addr)
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		alog.Close()
		logs := logBuf.String()
		if strings.Contains(logs, prodCookie) || strings.Contains(logs, e.gw.Cookie("alice", time.Now())) {
			t.Error("operational logs contain a cookie")
		}
	})
	return e
}

// sshResult is one run of the OpenSSH client.
type sshResult struct {
	stdout, stderr string
	code           int
}

func (e *gatewayEnv) sshArgs(user, key string, extra ...string) []string {
	port, err := strconv.Atoi(e.port)
	if err != nil {
		e.t.Fatalf("gateway port %q: %v", e.port, err)
	}
	args := beamtest.SSHClientArgs(port, key)
	if _, err := os.Stat(key + "-cert.pub"); err == nil {
		args = append(args, "-o", "CertificateFile="+key+"-cert.pub")
	}
	args = append(args, extra...)
	return append(args, user+"@127.0.0.1")
}

// ssh runs the client to completion (bounded) with the given command.
func (e *gatewayEnv) ssh(user, key string, sshOpts []string, command ...string) sshResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(e.sshArgs(user, key, sshOpts...), command...)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = nil
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("ssh: %v", err)
	}
	return sshResult{out.String(), errb.String(), code}
}

// forward starts `ssh -N -L ...` in the background, waits until the first
// local port accepts, and stops it in Cleanup.
func (e *gatewayEnv) forward(user, key string, locals []string, firstPort int) {
	e.t.Helper()
	var opts []string
	for _, l := range locals {
		opts = append(opts, "-L", l)
	}
	opts = append(opts, "-N", "-o", "ExitOnForwardFailure=yes")
	cmd := exec.Command("ssh", e.sshArgs(user, key, opts...)...)
	var errb beamtest.SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	beamtest.WaitListening(e.t, net.JoinHostPort("127.0.0.1", strconv.Itoa(firstPort)), exited, errb.String)
}

// withT returns a copy of e that reports to t (for subtests).
func (e *gatewayEnv) withT(t *testing.T) *gatewayEnv {
	c := *e
	c.t = t
	return &c
}

// auditLog returns the audit log's text.
func (e *gatewayEnv) auditLog() string {
	b, _ := os.ReadFile(e.auditP)
	return string(b)
}

// waitAudit waits (bounded) until the audit log contains every want.
func (e *gatewayEnv) waitAudit(want ...string) string {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := e.auditLog()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(log, w)
		}
		if ok {
			return log
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("audit log lacks %q:\n%s", want, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSSHKeyLoginBanner(t *testing.T) {
	e := startGateway(t, envOptions{})
	r := e.ssh("alice", e.aliceK, nil)
	if r.code != 0 {
		t.Fatalf("ssh alice: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	cookie := e.gw.Cookie("alice", time.Now())
	for _, want := range []string{
		"you are alice", "role: observer", "prismatic@prod-01", "4370", "REACHABLE NOW",
		"gateway cookie", cookie,
		// prismatic is the second cluster by name (after billing).
		"ssh -N -o ExitOnForwardFailure=yes -L 14370:beamgate:14370 -L 127.77.2.1:14370:prod-01:14370 -L 127.77.2.1:4370:prod-01:4370 alice@127.0.0.1 -p " + e.port,
		`{host, {127,77,2,1}, ["prod-01"]}.`, "export ERL_EPMD_PORT=14370 ERL_INETRC=$HOME/.beamgate-prismatic.inetrc",
		`iex --sname alice_iex --cookie ` + cookie + ` --erl "-connect_all false" -e`, "erl -sname alice_erl -connect_all false -setcookie " + cookie + " -eval",
		`[:"prismatic@prod-01"]`, "Ns = ['prismatic@prod-01']", "Cluster prismatic: 1 node, 0 of 1 reachable now (role observer: policy readonly, mode enforce)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("banner lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "billing") {
		t.Errorf("banner shows a cluster alice may not reach:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, prodCookie) {
		t.Fatal("banner leaks the production cookie")
	}

	// A PTY is allowed for the banner.
	r = e.ssh("alice", e.aliceK, []string{"-tt"})
	if r.code != 0 || !strings.Contains(r.stdout, "you are alice") {
		t.Errorf("ssh -tt: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = e.ssh("alice", e.aliceK, nil, "cookie")
	if r.code != 0 || r.stdout != cookie+"\n" {
		t.Errorf("ssh alice cookie = %q (exit %d), want %q", r.stdout, r.code, cookie+"\n")
	}
	r = e.ssh("alice", e.aliceK, nil, "nodes")
	if r.code != 0 || !strings.Contains(r.stdout, "prismatic@prod-01") || strings.Contains(r.stdout, cookie) {
		t.Errorf("ssh alice nodes: exit %d\n%s", r.code, r.stdout)
	}
	r = e.ssh("alice", e.aliceK, nil, "help")
	if r.code != 0 || !strings.Contains(r.stdout, "cookie") {
		t.Errorf("ssh alice help: exit %d\n%s", r.code, r.stdout)
	}
	for _, h := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"help", "top"}, "top NODE [--by", 0},
		{[]string{"top", "--help"}, "also takes a CLUSTER", 0},
		{[]string{"info", "-h"}, "info NODE PID|NAME", 0},
		{[]string{"recipe", "--help"}, "recipe [CLUSTER]", 0},
		{[]string{"help", "cookie"}, "cookie: print your gateway cookie", 0},
		{[]string{"help", "nope"}, `no command "nope"`, 1},
	} {
		r := e.ssh("alice", e.aliceK, nil, h.args...)
		if r.code != h.code || !strings.Contains(r.stdout+r.stderr, h.want) {
			t.Errorf("ssh alice %v: exit %d, want %d and %q:\n%s%s", h.args, r.code, h.code, h.want, r.stdout, r.stderr)
		}
	}
	r = e.ssh("alice", e.aliceK, nil, "sh")
	if r.code != 1 || !strings.Contains(r.stderr, "not a shell") || !strings.Contains(r.stderr, "cookie") {
		t.Errorf("ssh alice sh: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	r = e.ssh("alice", e.aliceK, []string{"-s"}, "sftp")
	if r.code == 0 {
		t.Errorf("sftp subsystem accepted")
	}
	log := e.waitAudit(`"event":"login"`, `"decision":"allow"`, `"op":"sh"`, `"reason":"command not allowed"`, `"subsystem":"sftp"`)
	if strings.Contains(log, prodCookie) || strings.Contains(log, cookie) {
		t.Error("audit log contains a cookie")
	}
}

func TestSSHRefusals(t *testing.T) {
	e := startGateway(t, envOptions{})
	stranger := beamtest.NewSSHKey(t, e.dir, "stranger")
	if r := e.ssh("alice", stranger, nil, "cookie"); r.code != 255 || r.stdout != "" {
		t.Errorf("unknown key: exit %d %q", r.code, r.stdout)
	}
	if r := e.ssh("mallory", e.aliceK, nil, "cookie"); r.code != 255 {
		t.Errorf("unknown user: exit %d", r.code)
	}
	if r := e.ssh("bob", e.aliceK, nil, "cookie"); r.code != 255 {
		t.Errorf("alice's key as bob: exit %d", r.code)
	}
	e.waitAudit(`"event":"login","user":"alice","source_addr"`, `"decision":"deny"`, "public key not listed for user", "unknown user")

	// ssh -R is refused.
	r := e.ssh("alice", e.aliceK, []string{"-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22"})
	if r.code == 0 {
		t.Errorf("ssh -R: exit 0")
	}
	e.waitAudit(`"event":"remote_forward"`)

	// A destination outside the configuration: the local connection is
	// closed at once and the refusal audited.
	ep, lp, bp, wp := beamtest.FreePort(t), beamtest.FreePort(t), beamtest.FreePort(t), beamtest.FreePort(t)
	e.forward("alice", e.aliceK, []string{
		fmt.Sprintf("%d:prod-01:4369", ep),
		fmt.Sprintf("%d:example.com:80", lp), // not a node host
		fmt.Sprintf("%d:bill-01:4380", bp),   // a node alice may not reach
		fmt.Sprintf("%d:prod-01:22", wp),     // a node host, wrong port
	}, ep)
	for _, port := range []int{lp, bp, wp} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(make([]byte, 1))
		c.Close()
		if n != 0 || err == nil {
			t.Errorf("forward to a refused destination delivered data: n=%d err=%v", n, err)
		}
	}
	e.waitAudit(`"event":"forward"`, `"dest":"example.com:80","decision":"deny"`, "is not the host of a node you may reach",
		`"dest":"bill-01:4380","decision":"deny"`, `"dest":"prod-01:22","decision":"deny"`)
}
