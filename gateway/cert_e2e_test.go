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

// signCert signs key.pub with ca into key-cert.pub.
func signCert(t *testing.T, ca, key string, args ...string) {
	t.Helper()
	beamtest.SSHKeygen(t, append(append([]string{"-q", "-s", ca}, args...), key+".pub")...)
	if _, err := os.Stat(key + "-cert.pub"); err != nil {
		t.Fatal(err)
	}
}

func TestSSHCertificates(t *testing.T) {
	beamtest.RequireOpenSSH(t)
	caDir := t.TempDir()
	ca := beamtest.NewSSHKey(t, caDir, "user_ca")
	otherCA := beamtest.NewSSHKey(t, caDir, "other_ca")
	e := startGateway(t, envOptions{caPub: beamtest.PublicKey(t, ca)})
	d := e.dir

	valid := beamtest.NewSSHKey(t, d, "valid")
	signCert(t, ca, valid, "-I", "alice-laptop-2026", "-n", "alice", "-z", "4242", "-V", "-5m:+1h")
	r := e.ssh("alice", valid, nil)
	if r.code != 0 || !strings.Contains(r.stdout, `you are alice (certificate "alice-laptop-2026", serial 4242)`) {
		t.Fatalf("valid certificate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.waitAudit(`"key_id":"alice-laptop-2026","cert_serial":4242`)

	for _, tc := range []struct {
		name string
		ca   string
		args []string
		user string
		why  string // in the audit log
	}{
		{"expired", ca, []string{"-I", "expired", "-n", "alice", "-V", "-2d:-1d"}, "alice", "certificate refused"},
		{"other CA", otherCA, []string{"-I", "otherca", "-n", "alice", "-V", "-5m:+1h"}, "alice", "unknown CA"},
		{"wrong principal", ca, []string{"-I", "wrongprincipal", "-n", "bob", "-V", "-5m:+1h"}, "alice", "certificate refused"},
		{"unknown user", ca, []string{"-I", "mallory", "-n", "mallory", "-V", "-5m:+1h"}, "mallory", "unknown user"},
		{"source-address", ca, []string{"-I", "elsewhere", "-n", "alice", "-V", "-5m:+1h", "-O", "source-address=10.9.9.9/32"}, "alice", "source-address"},
		{"not yet valid", ca, []string{"-I", "future", "-n", "alice", "-V", "+1d:+2d"}, "alice", "certificate refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.withT(t)
			k := beamtest.NewSSHKey(t, t.TempDir(), "k")
			signCert(t, tc.ca, k, tc.args...)
			r := e.ssh(tc.user, k, nil, "cookie")
			if r.code != 255 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q", r.code, r.stdout)
			}
			e.waitAudit(tc.why)
		})
	}
	// The certificate's key is not listed for alice: without the
	// certificate the same key is refused.
	os.Rename(valid+"-cert.pub", filepath.Join(d, "moved-cert.pub"))
	if r := e.ssh("alice", valid, nil, "cookie"); r.code != 255 {
		t.Errorf("certificate key without certificate: exit %d", r.code)
	}
	// Only public-key authentication: password and keyboard-interactive
	// are not even offered.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
		"-p", e.port, "alice@127.0.0.1", "cookie").CombinedOutput()
	if !strings.Contains(string(out), "Permission denied (publickey)") {
		t.Errorf("non-publickey login: %s", out)
	}
	log := e.auditLog()
	if strings.Contains(log, prodCookie) {
		t.Error("production cookie in the audit log")
	}
}
