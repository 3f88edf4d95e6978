package beamtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sshKeygenTimeout bounds one ssh-keygen run.
const sshKeygenTimeout = 30 * time.Second

// RequireOpenSSH skips the test unless the OpenSSH client ssh and
// ssh-keygen are on PATH, and the further programs named in more (such as
// "/usr/sbin/sshd") are installed too.
func RequireOpenSSH(t testing.TB, more ...string) {
	t.Helper()
	for _, name := range append([]string{"ssh", "ssh-keygen"}, more...) {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s not installed (Debian openssh-client, openssh-server; see .ci/run): %v", name, err)
		}
	}
}

// SSHKeygen runs ssh-keygen with args, bounded, and fails the test on
// error.
func SSHKeygen(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshKeygenTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ssh-keygen", args...).CombinedOutput(); err != nil {
		t.Fatalf("beamtest: ssh-keygen %q: %v\n%s", args, err, out)
	}
}

// NewSSHKey generates an unencrypted ed25519 key pair dir/name and
// dir/name.pub, commented name, and returns the private key's path.
func NewSSHKey(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	SSHKeygen(t, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p)
	return p
}

// PublicKey returns the public half of the private key file key (the
// authorized_keys line in key + ".pub"), trimmed.
func PublicKey(t testing.TB, key string) string {
	t.Helper()
	b, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatalf("beamtest: public key: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// SSHClientArgs are the OpenSSH client options of a test's ssh to a server
// on port with the private key file key: no user configuration or
// known_hosts, no prompts, only that key, errors only, a 10 s connect
// timeout; then extra (more options, the destination, a command).
func SSHClientArgs(port int, key string, extra ...string) []string {
	args := []string{"-F", "/dev/null",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10", "-p", strconv.Itoa(port), "-i", key}
	return append(args, extra...)
}
