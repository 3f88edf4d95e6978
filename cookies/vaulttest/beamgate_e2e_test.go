package vaulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/internal/beamtest"
)

// proc is a background process stopped at cleanup.
type proc struct {
	cmd    *exec.Cmd
	out    *beamtest.SyncBuffer
	exited chan struct{}
	at     time.Time // when it exited
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &beamtest.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); p.at = time.Now(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// waitPort waits (bounded) until ip:port accepts, failing early when p
// exits.
func (p *proc) waitPort(t *testing.T, ip string, port int) {
	t.Helper()
	beamtest.WaitListening(t, net.JoinHostPort(ip, strconv.Itoa(port)), p.exited, p.out.String)
}

// runCmd runs a command to completion (bounded) and returns its exit code
// and combined output.
func runCmd(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return 0, out.String()
}

// sshArgs are alice's ssh options (then extra) and destination; append a
// command.
func sshArgs(port int, key string, extra ...string) []string {
	return append(beamtest.SSHClientArgs(port, key, extra...), "alice@127.0.0.1")
}

// TestBeamgateBinaryWithVault runs the real beamgate binary against a real
// Vault core with AppRole: an engineer reaches a real production node
// through ssh -L and the gateway; `beamgate cookie rotate` rotates the
// node's cookie under the engineer's live session, and a new session
// still works (the gateway's cached cookie is stale; the relay's fresh
// retry finds the new one); `beamgate offboard alice` cuts alice's live
// SSH connection and relayed sessions and her next login is refused. The
// production cookie appears in none of the outputs, logs or audit files.
func TestBeamgateBinaryWithVault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds beamgate, starts Vault, BEAM nodes and OpenSSH")
	}
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t, "go")
	bin := beamtest.BuildBeamgate(t, t.TempDir())
	tv := startVault(t)
	auth := tv.appRole(t, "gateway", "beamgate-gateway", time.Hour, 2*time.Hour)
	const prodCookie = "PRODCOOKIEFROMVAULTNEVERSHOWN"
	tv.putCookie(t, "prismatic", prodCookie)

	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	// The node is named by its address: rotate.Run's hidden-node
	// client (gateway/dist/client) dials the distribution port on the
	// node name's host, not on the configured dial host, and this box
	// cannot resolve a made-up host name.
	const prodNode = "prismatic@127.0.0.2"
	prod := beamtest.StartProduction(t, beamtest.Options{Name: prodNode, Cookie: prodCookie, LongNames: true,
		BindIP: "127.0.0.2", EpmdPort: prodEpmd})

	dir := t.TempDir()
	key := beamtest.NewSSHKey(t, dir, "alice")
	sshPort, ep, gp := beamtest.FreePort(t), beamtest.FreePort(t), beamtest.FreePort(t)
	cfg := filepath.Join(dir, "beamgate.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
host_key: ./state/host_key
audit:
  path: ./state/audit.jsonl
engineer_epmd_port: %d
%sclusters:
  prismatic:
    nodes:
      - name: prismatic@127.0.0.2
        dial: 127.0.0.2:%d
        gateway_port: %d
users:
  alice:
    keys: [%q]
    roles: [observer]
roles:
  observer:
    clusters: [prismatic]
    policy: readonly
    mode: enforce
`, sshPort, ep, tv.cookiesYAML(auth, "cache_ttl: 10m", "stale_limit: 1h"), prodEpmd, gp, beamtest.PublicKey(t, key))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	serve := startProc(t, bin, "serve", "--config", cfg)
	serve.waitPort(t, "127.0.0.1", sshPort)

	code, cookieOut := runCmd(t, "ssh", append(sshArgs(sshPort, key), "cookie")...)
	gwCookie := strings.TrimSpace(cookieOut)
	if code != 0 || gwCookie == "" {
		t.Fatalf("ssh alice cookie: %d %s\n%s", code, cookieOut, serve.out.String())
	}
	fwd := startProc(t, "ssh", sshArgs(sshPort, key, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:127.0.0.2:4369", ep), // the engineer node registers here
		"-L", fmt.Sprintf("127.0.0.2:%d:127.0.0.2:4369", ep), // and looks production up here
		"-L", fmt.Sprintf("127.0.0.2:%d:127.0.0.2:%d", gp, gp))...)
	fwd.waitPort(t, "127.0.0.2", ep)
	engineer := func(name string) *beamtest.Node {
		return beamtest.Start(t, beamtest.Options{Name: name + "@127.0.0.1", Cookie: gwCookie, EpmdPort: ep,
			LongNames: true, Hidden: true, Kind: beamtest.KindErl})
	}
	auditText := func() string {
		var all strings.Builder
		files, _ := filepath.Glob(filepath.Join(dir, "state", "audit.jsonl*"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			all.Write(b)
		}
		return all.String()
	}

	engA := engineer("enga")
	if got := engA.Eval(t, "net_adm:ping('"+prodNode+"')"); got != "pong" {
		t.Fatalf("ping through beamgate with the Vault cookie = %s\n%s\n%s", got, serve.out.String(), auditText())
	}

	// Rotate while engA's relayed session is up.
	code, rotOut := runCmd(t, bin, "cookie", "rotate", "--config", cfg, "--cluster", "prismatic")
	t.Logf("cookie rotate:\n%s", rotOut)
	if code != 0 || !strings.Contains(rotOut, prodNode) || !strings.Contains(rotOut, "rotated") ||
		!strings.Contains(rotOut, "held by a running gateway") {
		t.Fatalf("cookie rotate: exit %d\n%s", code, rotOut)
	}
	newCookie, version := currentCookieOf(t, tv, "prismatic")
	if newCookie == prodCookie || version != 2 {
		t.Fatalf("vault cookie not rotated: version %d", version)
	}
	if got := prod.Eval(t, "erlang:get_cookie() =:= '"+newCookie+"'."); got != "true" {
		t.Fatalf("production node did not get the new cookie: %s", got)
	}
	if got := engA.Eval(t, "rpc:call('"+prodNode+"', erlang, node, [], 5000)"); got != "'"+prodNode+"'" {
		t.Errorf("engineer session across the rotation: %s", got)
	}
	// A new session: the gateway still caches the old cookie (cache_ttl
	// 10m); production refuses it, the relay reads Vault fresh and retries.
	engB := engineer("engb")
	if got := engB.Eval(t, "net_adm:ping('"+prodNode+"')"); got != "pong" {
		t.Fatalf("new session after the rotation = %s\n%s", got, serve.out.String())
	}

	// Offboard alice: the live ssh -N and both relayed sessions end.
	code, offOut := runCmd(t, bin, "offboard", "alice", "--reason", "test", "--config", cfg)
	returned := time.Now()
	t.Logf("offboard:\n%s", offOut)
	if code != 0 || !strings.Contains(offOut, "revoked user alice") || !strings.Contains(offOut, "offboarded alice") {
		t.Fatalf("offboard: exit %d\n%s", code, offOut)
	}
	var sshGone time.Time
	select {
	case <-fwd.exited:
		sshGone = fwd.at
	case <-time.After(10 * time.Second):
		t.Fatalf("alice's ssh -N still runs 10 s after offboard returned\n%s", serve.out.String())
	}
	distGone := map[string]time.Time{}
	deadline := time.Now().Add(10 * time.Second)
	for len(distGone) < 2 && time.Now().Before(deadline) {
		for _, n := range []*beamtest.Node{engA, engB} {
			if _, done := distGone[n.Name]; done {
				continue
			}
			if got := n.Eval(t, "nodes(connected)."); got == "[]" {
				distGone[n.Name] = time.Now()
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(distGone) < 2 {
		t.Fatalf("relayed sessions still up 10 s after offboard: %v", distGone)
	}
	last := sshGone
	for _, at := range distGone {
		if at.After(last) {
			last = at
		}
	}
	t.Logf("offboard returned; ssh connection ended %v after that (negative: before), last distribution session seen gone %v after",
		sshGone.Sub(returned).Round(time.Millisecond), last.Sub(returned).Round(time.Millisecond))
	if d := last.Sub(returned); d > time.Second {
		t.Errorf("alice's sessions ended %v after offboard returned, goal under 1 s", d)
	}

	// Alice's key can no longer log in, though still configured.
	if code, out := runCmd(t, "ssh", append(sshArgs(sshPort, key), "cookie")...); code != 255 || strings.Contains(out, gwCookie) {
		t.Errorf("login after offboard: exit %d %s", code, out)
	}
	// Offboarding rotated the cluster's cookie again.
	if c3, v3 := currentCookieOf(t, tv, "prismatic"); v3 != 3 || c3 == newCookie {
		t.Errorf("offboard did not rotate: version %d", v3)
	}
	finalCookie, _ := currentCookieOf(t, tv, "prismatic")

	// Audit: everything is in the main log or its CLI siblings, and the
	// chains verify.
	audits := auditText()
	for _, want := range []string{`"event":"login"`, `"event":"cookie_rotate"`, `"event":"offboard"`, "revoked"} {
		if !strings.Contains(audits, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	// A reviewer verifies with their own token (the gateway's policy signs
	// checkpoints but cannot read the key): chain, signed checkpoints, and
	// the checkpoint anchored in Vault KV.
	tokFile := tv.auditorToken(t)
	if code, out := runCmd(t, bin, "audit", "verify", "--config", cfg, "--vault-token-file", tokFile); code != 0 ||
		!strings.Contains(out, "ok audit log") || !strings.Contains(out, "checkpoints: ") || !strings.Contains(out, "anchored: ") {
		t.Errorf("audit verify: %d\n%s", code, out)
	}
	if code, out := runCmd(t, bin, "audit", "verify", "--config", cfg); code != 1 || !strings.Contains(out, "beamgate-auditor") {
		t.Errorf("audit verify with the gateway's own credentials should be refused, naming the reviewer policy: %d\n%s", code, out)
	}
	// Two rotations by SIGHUP, as logrotate's postrotate does: the chain
	// goes on across three files.
	for i := range 2 {
		serve.cmd.Process.Signal(syscall.SIGHUP)
		waitFor(t, 10*time.Second, func() bool { return strings.Count(serve.out.String(), "audit log rotated on SIGHUP") > i })
		if code, out := runCmd(t, "ssh", append(sshArgs(sshPort, key), "cookie")...); code == 0 {
			t.Errorf("revoked alice logs in: %s", out) // an audited refusal in the new file
		}
	}
	// Stop the gateway: a final checkpoint.
	serve.cmd.Process.Signal(os.Interrupt)
	<-serve.exited
	state := filepath.Join(dir, "state")
	files, _ := audit.Segments(filepath.Join(state, "audit.jsonl"))
	if len(files) != 3 {
		t.Fatalf("rotated set: %v", files)
	}
	verifyCopy := func(mutate func(dir string) string) (int, string) {
		t.Helper()
		c := filepath.Join(t.TempDir(), "state")
		copyDir(t, state, c)
		args := []string{"audit", "verify", "--config", cfg, "--vault-token-file", tokFile, "--file", mutate(c)}
		return runCmd(t, bin, args...)
	}
	active := func(d string) string { return filepath.Join(d, "audit.jsonl") }
	if code, out := verifyCopy(active); code != 0 || !strings.Contains(out, "ok audit log: 3 file(s)") {
		t.Fatalf("a clean rotated set: %d\n%s", code, out)
	}
	// Each attack fails verify with its own message.
	other := filepath.Join(dir, "other.yaml")
	otherPort := beamtest.FreePort(t)
	os.WriteFile(other, []byte(strings.NewReplacer(fmt.Sprintf("listen: 127.0.0.1:%d", sshPort), fmt.Sprintf("listen: 127.0.0.1:%d", otherPort),
		"path: ./state/audit.jsonl", "path: ./other/audit.jsonl\n  replica: other-gateway").Replace(yaml)), 0o600)
	second := startProc(t, bin, "serve", "--config", other)
	second.waitPort(t, "127.0.0.1", otherPort)
	second.cmd.Process.Signal(os.Interrupt)
	<-second.exited
	for _, tc := range []struct {
		name, want string
		mutate     func(dir string) string
	}{
		{"tail truncation", "FAIL truncated", func(d string) string {
			data, _ := os.ReadFile(active(d))
			lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
			os.WriteFile(active(d), []byte(strings.Join(lines[:len(lines)-3], "")), 0o600)
			return active(d)
		}},
		{"an empty file", "FAIL empty", func(d string) string {
			p := filepath.Join(d, "empty", "audit.jsonl")
			os.MkdirAll(filepath.Dir(p), 0o700)
			os.WriteFile(p, nil, 0o600)
			return p
		}},
		{"another gateway's valid log", "FAIL foreign", func(string) string { return filepath.Join(dir, "other", "audit.jsonl") }},
		{"an edited record", "FAIL chain", func(d string) string {
			f := filepath.Join(d, filepath.Base(files[0]))
			data, _ := os.ReadFile(f)
			os.WriteFile(f, []byte(strings.Replace(string(data), `"user":"alice"`, `"user":"mallory"`, 1)), 0o600)
			return active(d)
		}},
		{"a deleted middle file", "FAIL missing_file", func(d string) string {
			os.Remove(filepath.Join(d, filepath.Base(files[1])))
			return active(d)
		}},
	} {
		if code, out := verifyCopy(tc.mutate); code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: verify exit %d, want 1 and %q\n%s", tc.name, code, tc.want, out)
		}
	}
	// A forged checkpoint in Vault (written with root, not signed by the
	// Transit key) fails too, with its own message.
	host, _ := os.Hostname()
	kv := tv.root.KVv2("secret")
	sec, err := kv.Get(context.Background(), "beamgate/audit/checkpoints/"+host)
	if err != nil {
		t.Fatal(err)
	}
	forged := sec.Data
	forged["seq"] = json.Number("999999")
	if _, err := kv.Put(context.Background(), "beamgate/audit/checkpoints/"+host, forged); err != nil {
		t.Fatal(err)
	}
	if code, out := runCmd(t, bin, "audit", "verify", "--config", cfg, "--vault-token-file", tokFile); code != 1 || !strings.Contains(out, "FAIL checkpoint") {
		t.Errorf("a forged checkpoint in Vault: verify exit %d\n%s", code, out)
	}
	code, denied := runCmd(t, bin, "audit", "--config", cfg, "--user", "alice", "--decision", "deny", "--json")
	if code != 0 || !strings.Contains(denied, "revoked") {
		t.Errorf("audit query for alice's refused login: %d\n%s", code, denied)
	}

	texts := []string{serve.out.String(), fwd.out.String(), cookieOut, rotOut, offOut, engA.Output(), engB.Output(), audits, denied}
	for i, s := range texts {
		for _, c := range []string{prodCookie, newCookie, finalCookie} {
			if strings.Contains(s, c) {
				t.Errorf("text %d contains a production cookie", i)
			}
		}
	}
}

// currentCookieOf reads a cluster's newest cookie as root.
func currentCookieOf(t *testing.T, tv *testVault, cluster string) (string, int) {
	t.Helper()
	sec, err := tv.root.KVv2("secret").Get(context.Background(), cookies.DefaultPathPrefix+"/"+cluster)
	if err != nil {
		t.Fatal(err)
	}
	return sec.Data[cookies.CookieField].(string), sec.VersionMetadata.Version
}

// copyDir copies the regular files of src into a new dir dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond (bounded) until it holds.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
