package bench

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/cookies"
	"beamgate/internal/beamtest"

	gossh "golang.org/x/crypto/ssh"
)

const prodCookie = "BENCHPRODUCTIONCOOKIE5e1f"

// benchProfile is the bench role's policy: readonly plus binary:copy/2,
// so the 64 MiB fetch goes through the same policed path as everything
// else (readonly has no call returning a 64 MiB term on demand).
const benchProfile = `name: bench
description: readonly plus binary:copy/2 for the 64 MiB fetch benchmark
extends: readonly
calls:
  - rule: bench.fetch
    mfa: [binary:copy/2]
    args: [any, integer]
`

// beamgateProc is the bin/beamgate binary serving a generated
// configuration in its own process, so its RSS and CPU are its own.
type beamgateProc struct {
	pid         int
	port        int // SSH listen port on 127.0.0.1
	gatewayPort int // prismatic@prod-01's gateway (distribution) port
	aliceKey    string
	load        gossh.Signer // the "load" user's key, for in-process clients
	auditPath   string
	logPath     string
	confPath    string // its configuration file
	conf        string // what startBeamgate wrote there
}

// startBeamgate writes a configuration for prismatic@prod-01 (dialled at
// 127.0.0.2:prodEpmd) with users alice (an OpenSSH key) and load (an
// in-process key), role observer in enforce mode with benchProfile, audit
// on a real file and limits that admit sessions concurrent sessions, and
// runs `beamgate serve` on it. checkpoint is audit.checkpoint.interval (0:
// the default, 10 s); the checkpoint key and anchor are the file backend's
// default, <dir>.anchor beside the audit directory.
func startBeamgate(t *testing.T, prodEpmd, engineerEpmd, sessions int, checkpoint time.Duration) *beamgateProc {
	t.Helper()
	dir := t.TempDir()
	bin := beamtest.BuildBeamgate(t, dir)
	g := &beamgateProc{
		port:        beamtest.FreePort(t),
		gatewayPort: beamtest.FreePort(t),
		aliceKey:    beamtest.NewSSHKey(t, dir, "alice"),
		auditPath:   filepath.Join(dir, "audit.jsonl"),
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if g.load, err = gossh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	loadPub := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(g.load.PublicKey())))
	if err := os.WriteFile(filepath.Join(dir, "bench-policy.yaml"), []byte(benchProfile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cookies.WriteFile(filepath.Join(dir, "cookies.yaml"), map[string]string{"prismatic": prodCookie}); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`listen: 127.0.0.1:%d
host_key: ./ssh_host_ed25519_key
gateway_secret_file: ./gateway_secret
cookie_window: 24h
engineer_epmd_port: %d
audit:
  path: ./audit.jsonl%s
cookies:
  backend: file
  file: ./cookies.yaml
clusters:
  prismatic:
    nodes:
      - name: %s
        dial: 127.0.0.2:%d
        gateway_port: %d
users:
  alice:
    keys: [%q]
    roles: [observer]
  load:
    keys: [%q]
    roles: [observer]
roles:
  observer:
    clusters: [prismatic]
    policy: ./bench-policy.yaml
    mode: enforce
limits:
  max_channels_per_connection: 16
  max_connections_per_user: %d
  max_sessions_per_target: %d
`, g.port, engineerEpmd, checkpointYAML(checkpoint), prodName, prodEpmd, g.gatewayPort, beamtest.PublicKey(t, g.aliceKey), loadPub, sessions+8, sessions+16)
	confPath := filepath.Join(dir, "beamgate.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", confPath}
	if prof := os.Getenv("BEAMGATE_BENCH_CPUPROFILE"); prof != "" {
		args = append(args, "--cpuprofile", prof)
	}
	cmd := exec.Command(bin, args...)
	exited, logPath := startProcess(t, dir, "beamgate", cmd)
	g.pid, g.logPath, g.confPath, g.conf = cmd.Process.Pid, logPath, confPath, conf
	waitListening(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(g.port)), exited, logPath)
	return g
}

func checkpointYAML(interval time.Duration) string {
	if interval == 0 {
		return ""
	}
	return "\n  checkpoint:\n    interval: " + interval.String()
}

// dialSSH opens an in-process SSH connection to beamgate as user load.
func (g *beamgateProc) dialSSH() (*gossh.Client, error) {
	return gossh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(g.port)), &gossh.ClientConfig{
		User:            "load",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(g.load)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), // our own gateway on loopback
		Timeout:         10 * time.Second,
	})
}

// loadCookie asks beamgate for the load user's gateway cookie, as
// `ssh load@bastion cookie` does.
func (g *beamgateProc) loadCookie(t *testing.T) string {
	t.Helper()
	sc, err := g.dialSSH()
	if err != nil {
		t.Fatalf("ssh load@beamgate: %v", err)
	}
	defer sc.Close()
	s, err := sc.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output("cookie")
	if err != nil {
		t.Fatalf("ssh load@beamgate cookie: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func (g *beamgateProc) rss(t *testing.T) int64 {
	t.Helper()
	kb, err := procRSS(g.pid)
	if err != nil {
		t.Fatal(err)
	}
	return kb
}
