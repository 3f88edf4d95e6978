package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

const (
	sshdPath      = "/usr/sbin/sshd"
	listenTimeout = 30 * time.Second // a server or ssh -L accepting connections
	sshCmdTimeout = 30 * time.Second // one ssh command to completion
	stopWait      = 10 * time.Second // SIGTERM/SIGKILL until reaped
)

// requireOpenSSH skips unless the OpenSSH client, server and ssh-keygen
// are installed (Debian openssh-client, openssh-server).
func requireOpenSSH(t *testing.T) {
	t.Helper()
	for _, b := range []string{"ssh", "ssh-keygen", sshdPath} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (Debian openssh-client and openssh-server, see .ci/run)", b)
		}
	}
}

// newSSHKey generates an unencrypted ed25519 key pair in dir and returns
// the private key's path.
func newSSHKey(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), sshCmdTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", name, err, out)
	}
	return p
}

func readFileTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// startProcess starts cmd in its own process group with stderr going to a
// file in dir, and stops it (SIGTERM, then SIGKILL) in t.Cleanup. exited
// is closed once it has been reaped.
func startProcess(t *testing.T, dir, label string, cmd *exec.Cmd) (exited <-chan struct{}, logPath string) {
	t.Helper()
	logPath = filepath.Join(dir, label+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = processGroup()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", label, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { stopProcess(t, label, cmd, done) })
	return done, logPath
}

// waitListening waits (bounded) until addr accepts a TCP connection, failing
// early when the process serving it has exited.
func waitListening(t *testing.T, label, addr string, exited <-chan struct{}, logPath string) {
	t.Helper()
	deadline := time.Now().Add(listenTimeout)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited before listening on %s:\n%s", label, addr, b)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s not listening on %s after %v: %v\n%s", label, addr, listenTimeout, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sshdServer is a real OpenSSH sshd on 127.0.0.1 that lets the current
// user in with one key and allows local forwarding: what engineers ssh -L
// through today.
type sshdServer struct {
	port int
	user string
	key  string // the client's private key
}

// startSSHD runs /usr/sbin/sshd -D with a generated configuration, host
// key and authorized_keys in a temporary directory.
func startSSHD(t *testing.T) *sshdServer {
	t.Helper()
	requireOpenSSH(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if u.Uid == "0" {
		// sshd running as root insists on its privilege separation
		// directory, which Debian's service unit creates at boot.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("create /run/sshd for sshd: %v", err)
		}
	}
	dir := t.TempDir()
	hostKey := newSSHKey(t, dir, "ssh_host_ed25519_key")
	key := newSSHKey(t, dir, "engineer")
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, []byte(readFileTrim(t, key+".pub")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := beamtest.FreePort(t, "127.0.0.1")
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile none
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding local
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
LogLevel ERROR
`, port, hostKey, authKeys)
	confPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	exited, logPath := startProcess(t, dir, "sshd", exec.Command(sshdPath, "-D", "-e", "-f", confPath))
	waitListening(t, "sshd", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited, logPath)
	return &sshdServer{port: port, user: u.Username, key: key}
}

// sshArgs are the OpenSSH client options of every ssh run here: no user
// configuration, no host key prompts, no agent, errors only.
func sshArgs(port int, key string, extra ...string) []string {
	args := []string{"-F", "/dev/null",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10", "-p", strconv.Itoa(port), "-i", key}
	return append(args, extra...)
}

// sshForward runs `ssh -N -L ...` to user@127.0.0.1:port in the background
// and waits until every local port accepts.
func sshForward(t *testing.T, port int, user, key string, forwards []string, localPorts ...int) {
	t.Helper()
	var opts []string
	for _, f := range forwards {
		opts = append(opts, "-L", f)
	}
	opts = append(opts, "-N", "-o", "ExitOnForwardFailure=yes", user+"@127.0.0.1")
	exited, logPath := startProcess(t, t.TempDir(), "ssh-L", exec.Command("ssh", sshArgs(port, key, opts...)...))
	for _, p := range localPorts {
		waitListening(t, "ssh -L", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), exited, logPath)
	}
}

// sshOutput runs one ssh command to completion (bounded) and returns its
// standard output.
func sshOutput(t *testing.T, port int, user, key string, command ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshCmdTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ssh", sshArgs(port, key, append([]string{user + "@127.0.0.1"}, command...)...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssh %s@127.0.0.1 %v: %v\n%s", user, command, err, errb.String())
	}
	return out.String()
}
