package main

import (
	"beamgate/internal/beamtest"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"beamgate/audit"
)

// writeLog writes records to a new audit log at path through audit.Log.
func writeLog(t *testing.T, path string, recs ...*audit.Record) {
	t.Helper()
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, r := range recs {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func sampleRecords() []*audit.Record {
	return []*audit.Record{
		{Event: "login", User: "alice", Decision: audit.DecisionAllow, Session: "s1"},
		{Event: "message", User: "alice", Cluster: "prismatic", Target: "prismatic@prod-01", Engineer: "me@laptop",
			Decision: audit.DecisionAllow, Op: "SPAWN_REQUEST", MFA: "erlang:process_info/2", Session: "s1"},
		{Event: "message", User: "alice", Cluster: "prismatic", Target: "prismatic@prod-01", Decision: audit.DecisionDeny,
			Op: "SPAWN_REQUEST", MFA: "ets:insert/2", Reason: "write refused\x1b[31m", Session: "s1"},
		{Event: "login", User: "bob", Decision: audit.DecisionDeny, Reason: "public key not listed for user"},
	}
}

// runCLI runs the beamgate command line and returns exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditQuery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLog(t, path, sampleRecords()...)

	code, out, errs := runCLI(t, "audit", "--file", path)
	if code != 0 || !strings.Contains(out, "TIME") || strings.Count(out, "\n") != 5 {
		t.Fatalf("audit: %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "\x1b") {
		t.Error("table passes a terminal escape through")
	}
	code, out, _ = runCLI(t, "audit", "--file", path, "--user", "alice", "--decision", "deny")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "mfa=ets:insert/2") || strings.Contains(out, "bob") {
		t.Errorf("--user alice --decision deny:\n%s", out)
	}
	code, out, _ = runCLI(t, "audit", "--file", path, "--node", "prismatic@prod-01", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("--node --json: %d\n%s", code, out)
	}
	for _, l := range lines {
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Target != "prismatic@prod-01" || r.Hash == "" {
			t.Errorf("json line %q: %v %+v", l, err, r)
		}
	}
	code, out, _ = runCLI(t, "audit", "--file", path, "--cluster", "prismatic", "--session", "s1", "--json")
	if code != 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("--cluster --session: %s", out)
	}
	// Times: a duration means that long ago; RFC 3339 works; bad input is
	// explained.
	if code, out, _ = runCLI(t, "audit", "--file", path, "--since", "1h", "--json"); code != 0 || strings.Count(out, "\n") != 4 {
		t.Errorf("--since 1h: %d %s", code, out)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if code, out, _ = runCLI(t, "audit", "--file", path, "--since", future, "--json"); code != 0 || out != "" {
		t.Errorf("--since future: %d %q", code, out)
	}
	if code, out, _ = runCLI(t, "audit", "--file", path, "--until", future, "--json"); code != 0 || strings.Count(out, "\n") != 4 {
		t.Errorf("--until future: %d %q", code, out)
	}
	if code, _, errs = runCLI(t, "audit", "--file", path, "--since", "yesterday"); code != 1 || !strings.Contains(errs, "RFC 3339") {
		t.Errorf("--since yesterday: %d %s", code, errs)
	}
	if code, _, errs = runCLI(t, "audit"); code != 1 || !strings.Contains(errs, "--config FILE or --file PATH") {
		t.Errorf("no file: %d %s", code, errs)
	}
}

func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	writeLog(t, path, sampleRecords()...)
	code, out, _ := runCLI(t, "audit", "verify", "--file", path)
	if code != 0 || !strings.Contains(out, "ok "+path+": 4 records") {
		t.Fatalf("verify: %d %s", code, out)
	}
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")

	for _, tc := range []struct {
		name, text, want string
	}{
		{"edited", strings.Join(lines[:2], "") + strings.Replace(lines[2], `"decision":"deny"`, `"decision":"allo"`, 1) + strings.Join(lines[3:], ""), "line 3"},
		{"deleted", lines[0] + strings.Join(lines[2:], ""), "line 2"},
		{"truncated", string(data[:len(data)-20]), "line 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".jsonl")
			os.WriteFile(p, []byte(tc.text), 0o600)
			code, out, errs := runCLI(t, "audit", "verify", "--file", p)
			if code != 1 || !strings.Contains(out, "BROKEN") || !strings.Contains(out, tc.want) || !strings.Contains(errs, "hash chain broken") {
				t.Errorf("verify %s: exit %d\n%s%s", tc.name, code, out, errs)
			}
		})
	}
}

func TestAuditTailFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Append(context.Background(), &audit.Record{Event: "login", User: "alice", Decision: audit.DecisionAllow})

	// Without -f, tail prints what is there and ends.
	code, out, _ := runCLI(t, "audit", "tail", "--file", path)
	if code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("tail: %d %s", code, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var buf beamtest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"audit", "tail", "-f", "--json", "--user", "carol", "--file", path}, &buf, &buf)
	}()
	if err := l.Append(context.Background(), &audit.Record{Event: "offboard", User: "carol", Decision: audit.DecisionDeny, Reason: "left"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), `"user":"carol"`) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("tail -f did not print the appended record: %q", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("tail -f exit %d: %s", code, buf.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail -f did not stop on cancel")
	}
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "alice") {
			t.Errorf("filter let alice through: %s", sc.Text())
		}
	}
}

// TestCLIAuditWhileGatewayHoldsLog: with the main log flock'ed (a running
// gateway), a command's records go to a sibling file with its own chain,
// which audit --config reads and verify checks.
func TestCLIAuditWhileGatewayHoldsLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "audit.jsonl")
	os.MkdirAll(filepath.Dir(path), 0o700)
	held, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	held.Append(context.Background(), &audit.Record{Event: "login", User: "alice", Decision: audit.DecisionAllow})
	var errb bytes.Buffer
	l, got, err := openCLIAudit(path, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, path+cliAuditSuffix) || !strings.Contains(errb.String(), "held by a running gateway") {
		t.Fatalf("sibling %q, stderr %q", got, errb.String())
	}
	l.Append(context.Background(), &audit.Record{Event: "offboard", User: "alice", Decision: audit.DecisionDeny, Reason: "test"})
	l.Close()
	held.Close()

	cfg := writeMinimalConfig(t, dir)
	code, out, errs := runCLI(t, "audit", "--config", cfg, "--json")
	if code != 0 || !strings.Contains(out, `"event":"login"`) || !strings.Contains(out, `"event":"offboard"`) {
		t.Errorf("audit --config: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "audit", "verify", "--config", cfg)
	if code != 0 || strings.Count(out, "ok ") != 2 {
		t.Errorf("verify --config: %d\n%s", code, out)
	}

	// Without a gateway, the command writes the main log itself.
	l, got, err = openCLIAudit(path, &errb)
	if err != nil || got != path {
		t.Fatalf("unlocked: %q %v", got, err)
	}
	l.Close()
}

// writeMinimalConfig writes a valid configuration with its audit log at
// dir/state/audit.jsonl and returns its path.
func writeMinimalConfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := filepath.Join(dir, "beamgate.yaml")
	os.WriteFile(cfg, []byte(`listen: 127.0.0.1:2222
host_key: ./state/host_key
audit:
  path: ./state/audit.jsonl
cookies:
  backend: file
  file: ./state/cookies.yaml
clusters:
  prismatic:
    nodes:
      - {name: prismatic@prod-01, dial: 127.0.0.2, gateway_port: 4370}
users:
  alice:
    keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice"]
    roles: [observer]
roles:
  observer:
    clusters: [prismatic]
    policy: readonly
    mode: enforce
`), 0o600)
	return cfg
}
