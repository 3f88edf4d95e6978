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
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

const (
	sshdPath      = "/usr/sbin/sshd"
	sshCmdTimeout = 30 * time.Second // one ssh command to completion
	stopWait      = 10 * time.Second // SIGTERM/SIGKILL until reaped
)

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
// early when the process serving it has exited; failures show its log.
func waitListening(t *testing.T, addr string, exited <-chan struct{}, logPath string) {
	t.Helper()
	beamtest.WaitListening(t, addr, exited, func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	})
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
	beamtest.RequireOpenSSH(t, sshdPath)
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
	hostKey := beamtest.NewSSHKey(t, dir, "ssh_host_ed25519_key")
	key := beamtest.NewSSHKey(t, dir, "engineer")
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, []byte(beamtest.PublicKey(t, key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := beamtest.FreePort(t)
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
	waitListening(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited, logPath)
	return &sshdServer{port: port, user: u.Username, key: key}
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
	exited, logPath := startProcess(t, t.TempDir(), "ssh-L", exec.Command("ssh", beamtest.SSHClientArgs(port, key, opts...)...))
	for _, p := range localPorts {
		waitListening(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), exited, logPath)
	}
}

// sshOutput runs one ssh command to completion (bounded) and returns its
// standard output.
func sshOutput(t *testing.T, port int, user, key string, command ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshCmdTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ssh", beamtest.SSHClientArgs(port, key, append([]string{user + "@127.0.0.1"}, command...)...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssh %s@127.0.0.1 %v: %v\n%s", user, command, err, errb.String())
	}
	return out.String()
}
