package deploycheck

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// maxExposure is the highest `systemd-analyze security` score accepted.
const maxExposure = 2.0

// execStart is the unit's ExecStart= line, as the README documents it.
const execStart = "ExecStart=/usr/local/bin/beamgate serve --config /etc/beamgate/beamgate.yaml"

// buildDir holds the beamgate binary built once for this test binary.
var buildDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// repoRoot is the directory of the beamgate module's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module beamgate\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod of module beamgate above the working directory")
		}
		dir = parent
	}
}

// deployFile reads deploy/systemd/NAME.
func deployFile(t *testing.T, name string) (path, text string) {
	t.Helper()
	path = filepath.Join(repoRoot(t), "deploy", "systemd", name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, string(b)
}

// needTool returns the path of a command, or skips the test naming the
// Debian package that ships it.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (Debian package %s: apt-get install -y --no-install-recommends %s; .ci/run installs it)", name, pkg, pkg)
	}
	return p
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// beamgateBinary builds ./cmd/beamgate once (as `make build` does, without
// the version stamp) and returns its path.
func beamgateBinary(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "deploycheck-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(buildDir, "beamgate")
		cmd := exec.Command(goTool, "build", "-o", builtBin, "./cmd/beamgate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/beamgate: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// systemdEnv keeps systemd's tools from paging or colouring their output.
func systemdEnv() []string {
	return append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "SYSTEMD_LOG_COLOR=0", "LC_ALL=C.UTF-8")
}

// unitValues returns the values of every KEY= assignment in a unit file,
// in order (comments skipped).
func unitValues(unit, key string) []string {
	var out []string
	for line := range strings.Lines(unit) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestSystemdUnitVerify runs `systemd-analyze verify` on beamgate.service
// with ExecStart= pointing at a freshly built beamgate (verify insists the
// binary exists and is executable, and /usr/local/bin/beamgate is not
// installed here); every other line is the file's own. Any complaint that
// names the unit fails the test.
func TestSystemdUnitVerify(t *testing.T) {
	sa := needTool(t, "systemd-analyze", "systemd")
	_, unit := deployFile(t, "beamgate.service")
	if n := strings.Count(unit, "\n"+execStart+"\n"); n != 1 {
		t.Fatalf("beamgate.service has %d lines %q, want exactly 1", n, execStart)
	}
	bin := beamgateBinary(t)
	// The binary takes ExecStart's arguments.
	if out, _ := exec.Command(bin, "serve", "--help").CombinedOutput(); !strings.Contains(string(out), "-config") {
		t.Fatalf("beamgate serve --help does not list --config:\n%s", out)
	}
	gen := strings.Replace(unit, execStart, "ExecStart="+bin+" serve --config /etc/beamgate/beamgate.yaml", 1)
	path := filepath.Join(t.TempDir(), "beamgate.service")
	if err := os.WriteFile(path, []byte(gen), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sa, "verify", path)
	cmd.Env = systemdEnv()
	out, err := cmd.CombinedOutput()
	t.Logf("systemd-analyze verify (ExecStart=%s):\n%s", bin, out)
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "beamgate") {
			t.Errorf("systemd-analyze verify complains: %s", strings.TrimSpace(line))
		}
	}
}

// exposureRE matches the last line of `systemd-analyze security`.
var exposureRE = regexp.MustCompile(`Overall exposure level for beamgate\.service: ([0-9]+(?:\.[0-9]+)?) (\S+)`)

// TestSystemdSecurityScore fails unless `systemd-analyze security
// --offline=true` scores the unit file itself at most maxExposure.
func TestSystemdSecurityScore(t *testing.T) {
	sa := needTool(t, "systemd-analyze", "systemd")
	path, _ := deployFile(t, "beamgate.service")
	cmd := exec.Command(sa, "security", "--no-pager", "--offline=true", path)
	cmd.Env = systemdEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=true %s: %v\n%s", path, err, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no \"Overall exposure level for beamgate.service: N\" line in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	// What still counts against the unit (the ✗ lines) goes to the log.
	var open []string
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "✗") {
			open = append(open, strings.Join(strings.Fields(line), " "))
		}
	}
	t.Logf("exposure %.1f %s; still open:\n  %s", score, m[2], strings.Join(open, "\n  "))
	if score > maxExposure {
		t.Errorf("beamgate.service exposure %.1f %s, want at most %.1f:\n%s", score, m[2], maxExposure, out)
	}
}

// passwdEntry finds name in a passwd or group file: its ID and fields.
func passwdEntry(t *testing.T, file, name string) (id int, fields []string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), ":")
		if len(f) >= 3 && f[0] == name {
			id, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("%s: %q", file, line)
			}
			return id, f
		}
	}
	t.Fatalf("%s has no entry %q:\n%s", file, name, b)
	return 0, nil
}

// TestSystemdSysusersTmpfiles applies beamgate.sysusers and
// beamgate.tmpfiles to an empty root directory with the real
// systemd-sysusers and systemd-tmpfiles, then checks the user, the group
// and the directories the unit relies on.
func TestSystemdSysusersTmpfiles(t *testing.T) {
	sysusers := needTool(t, "systemd-sysusers", "systemd")
	tmpfiles := needTool(t, "systemd-tmpfiles", "systemd")
	_, unit := deployFile(t, "beamgate.service")
	if u, g := unitValues(unit, "User"), unitValues(unit, "Group"); !slices.Equal(u, []string{"beamgate"}) || !slices.Equal(g, []string{"beamgate"}) {
		t.Fatalf("beamgate.service: User=%v Group=%v, want beamgate (the sysusers snippet's)", u, g)
	}
	if s := unitValues(unit, "StateDirectory"); !slices.Equal(s, []string{"beamgate"}) {
		t.Fatalf("beamgate.service: StateDirectory=%v, want beamgate (/var/lib/beamgate, the tmpfiles snippet's)", s)
	}

	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// With --root, file arguments resolve inside the root: feed stdin.
	run := func(tool, file string, args ...string) {
		t.Helper()
		path, _ := deployFile(t, file)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(tool, append(append([]string{"--root=" + root}, args...), "-")...)
		cmd.Stdin = f
		cmd.Env = systemdEnv()
		out, err := cmd.CombinedOutput()
		t.Logf("%s %s < %s:\n%s", filepath.Base(tool), strings.Join(args, " "), file, out)
		if err != nil {
			t.Fatalf("%s < %s: %v\n%s", filepath.Base(tool), file, err, out)
		}
	}
	run(sysusers, "beamgate.sysusers")
	uid, pw := passwdEntry(t, filepath.Join(root, "etc", "passwd"), "beamgate")
	gid, _ := passwdEntry(t, filepath.Join(root, "etc", "group"), "beamgate")
	if uid == 0 || uid >= 1000 || gid == 0 || gid >= 1000 {
		t.Errorf("beamgate uid %d gid %d, want a system user and group (1-999)", uid, gid)
	}
	if len(pw) != 7 || pw[3] != strconv.Itoa(gid) || pw[5] != "/var/lib/beamgate" || pw[6] != "/usr/sbin/nologin" {
		t.Errorf("passwd entry %q, want primary group beamgate, home /var/lib/beamgate, shell /usr/sbin/nologin", strings.Join(pw, ":"))
	}

	if os.Geteuid() != 0 {
		t.Skip("systemd-tmpfiles needs root to chown the directories it creates; run as root (CI does) to check beamgate.tmpfiles")
	}
	run(tmpfiles, "beamgate.tmpfiles", "--create")
	for _, want := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{"/var/lib/beamgate", 0o700, uid, gid},
		{"/etc/beamgate", 0o750, 0, gid},
	} {
		fi, err := os.Stat(filepath.Join(root, want.path))
		if err != nil {
			t.Errorf("tmpfiles did not create %s: %v", want.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != want.mode || int(st.Uid) != want.uid || int(st.Gid) != want.gid {
			t.Errorf("%s: %v uid %d gid %d, want a directory %v uid %d gid %d", want.path, fi.Mode(), st.Uid, st.Gid, want.mode, want.uid, want.gid)
		}
	}
}

// TestSystemdLogrotate runs the logrotate example for real, in a scratch
// directory (its stamp file moved there and `systemctl reload` replaced by
// a command that records the call): it must rotate only its own stamp,
// recreate it and send the reload once, and must name no audit file.
func TestSystemdLogrotate(t *testing.T) {
	logrotate := needTool(t, "logrotate", "logrotate")
	if os.Geteuid() != 0 {
		t.Skip("the logrotate example creates its stamp as root:root; run as root (CI does)")
	}
	_, conf := deployFile(t, "logrotate.beamgate")
	const stamp, reload = "/var/log/beamgate-audit.stamp", "systemctl reload beamgate.service"
	var body []string // the lines that are not comments
	for line := range strings.Lines(conf) {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			body = append(body, l)
		}
	}
	text := strings.Join(body, "\n")
	if strings.Contains(text, "audit.jsonl") || strings.Contains(text, "/var/lib/beamgate") {
		t.Errorf("logrotate.beamgate names the audit log; beamgate must be the only one to rotate it:\n%s", text)
	}
	if !strings.HasPrefix(text, stamp+" {") || strings.Count(text, reload) != 1 {
		t.Fatalf("logrotate.beamgate: want one stanza for %s whose postrotate runs %q:\n%s", stamp, reload, text)
	}

	dir := t.TempDir()
	reloads := filepath.Join(dir, "reloads")
	conf = strings.ReplaceAll(conf, stamp, filepath.Join(dir, "stamp"))
	conf = strings.ReplaceAll(conf, reload, "echo reload >> "+reloads)
	cfg := filepath.Join(dir, "logrotate.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stamp"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// --force: rotate now, whatever the schedule says.
	cmd := exec.Command(logrotate, "--verbose", "--force", "--state", filepath.Join(dir, "status"), cfg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(reloads); err != nil || string(b) != "reload\n" {
		t.Errorf("postrotate ran %q (%v), want the reload once\n%s", b, err, out)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"logrotate.conf", "reloads", "stamp", "status"}) {
		t.Errorf("after logrotate the directory holds %v, want the stamp recreated and no old copy\n%s", names, out)
	}
}

// syscallGroups parses `systemd-analyze syscall-filter`: each @group's
// members (system calls and nested @groups).
func syscallGroups(t *testing.T, sa string) map[string][]string {
	t.Helper()
	cmd := exec.Command(sa, "syscall-filter", "--no-pager")
	cmd.Env = systemdEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter: %v\n%s", err, stderr.Bytes())
	}
	groups := map[string][]string{}
	cur := ""
	for line := range strings.Lines(string(out)) {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || strings.HasPrefix(s, "#"):
		case strings.HasPrefix(line, "@"):
			cur = s
			groups[cur] = nil
		case cur != "":
			groups[cur] = append(groups[cur], s)
		}
	}
	if len(groups["@system-service"]) == 0 {
		t.Fatalf("systemd-analyze syscall-filter listed no @system-service:\n%s", out)
	}
	return groups
}

// expand resolves a SystemCallFilter= item (a call or a @group) to calls.
func expand(groups map[string][]string, item string, into map[string]bool) {
	if !strings.HasPrefix(item, "@") {
		into[item] = true
		return
	}
	for _, m := range groups[item] {
		expand(groups, m, into)
	}
}

// allowedSyscalls applies the unit's SystemCallFilter= lines in order: an
// allow list, then ~ lines taking calls out of it.
func allowedSyscalls(t *testing.T, groups map[string][]string, unit string) map[string]bool {
	t.Helper()
	vals := unitValues(unit, "SystemCallFilter")
	if len(vals) == 0 || strings.HasPrefix(vals[0], "~") {
		t.Fatalf("beamgate.service: SystemCallFilter=%q, want an allow list first", vals)
	}
	allowed := map[string]bool{}
	for _, v := range vals {
		deny := strings.HasPrefix(v, "~")
		set := map[string]bool{}
		for _, item := range strings.Fields(strings.TrimPrefix(v, "~")) {
			if strings.HasPrefix(item, "@") && groups[item] == nil {
				t.Fatalf("SystemCallFilter= names %s, which systemd-analyze does not know", item)
			}
			expand(groups, item, set)
		}
		for c := range set {
			if deny {
				delete(allowed, c)
			} else {
				allowed[c] = true
			}
		}
	}
	return allowed
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls until f returns true or the deadline passes.
func waitFor(d time.Duration, f func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if f() {
			return true
		}
	}
	return f()
}

var (
	listeningRE = regexp.MustCompile(`"msg":"ssh front door listening","addr":"([^"]+)"`)
	// A strace -f line: "PID name(" or "PID <... name resumed>".
	straceCallRE = regexp.MustCompile(`^(\d+)\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)`)
	socketRE     = regexp.MustCompile(`\bsocket\((AF_[A-Z0-9]+)`)
	procOpenRE   = regexp.MustCompile(`\bopenat\([^,]*, "(/proc/[^"]*)"`)
	procPidRE    = regexp.MustCompile(`^/proc/(self|thread-self|[0-9]+)(/|$)`)
)

// procFallbacks are the /proc files outside /proc/PID that a Go binary
// reads and does without under ProcSubset=pid.
var procFallbacks = map[string]string{
	"/proc/sys/net/core/somaxconn": "net: the listen backlog falls back to syscall.SOMAXCONN",
	"/proc/sys/kernel/hostname":    "os.Hostname falls back to uname(2)",
	// gateway/config: without limits.buffer_budget the default is a
	// quarter of MemTotal; unreadable, it is 2GiB (deploy/systemd/README.md
	// says to set it).
	"/proc/meminfo": "limits.buffer_budget's default falls back to 2GiB",
}

// TestSystemdSyscallFilter runs the real `beamgate serve` under strace -f:
// first start (host key, gateway secret, audit log and checkpoint anchor
// created), an SSH login with two commands, a SIGHUP (configuration
// re-read, audit log rotated) and a SIGTERM. Every system call it made must
// pass the unit's SystemCallFilter= (expanded with systemd-analyze
// syscall-filter), every socket it opened RestrictAddressFamilies=, and
// every /proc file it opened ProcSubset=pid (or be one it does without).
// That is what "the filter keeps the Go binary working" means without a
// running systemd to apply it. The Vault backend is not exercised (its
// HTTPS client uses the same calls as the SSH side).
func TestSystemdSyscallFilter(t *testing.T) {
	sa := needTool(t, "systemd-analyze", "systemd")
	strace := needTool(t, "strace", "strace")
	_, unit := deployFile(t, "beamgate.service")
	allowed := allowedSyscalls(t, syscallGroups(t, sa), unit)
	families := map[string]bool{}
	for _, v := range unitValues(unit, "RestrictAddressFamilies") {
		for _, f := range strings.Fields(v) {
			families[f] = true
		}
	}
	if len(families) == 0 {
		t.Fatal("beamgate.service has no RestrictAddressFamilies=")
	}
	bin := beamgateBinary(t)

	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
host_key: ./state/ssh_host_ed25519_key
gateway_secret_file: ./state/gateway_secret
audit:
  path: ./state/audit/audit.jsonl
cookies:
  backend: file
  file: ./etc/cookies.yaml
clusters:
  demo:
    nodes:
      - name: demo@demo-prod-1
        dial: "127.0.0.1:1"
        gateway_port: 4370
users:
  ops:
    keys: [%q]
    roles: [observer]
roles:
  observer:
    clusters: [demo]
    policy: readonly
    mode: enforce
`, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sshPub))))
	for _, d := range []string{"state", "state/audit", "etc"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Relative paths resolve against the configuration file's directory.
	if err := os.WriteFile(filepath.Join(dir, "beamgate.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "cookies.yaml"), []byte("demo: DEPLOYCHECKCOOKIE\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	trace := filepath.Join(dir, "strace.out")
	cmd := exec.Command(strace, "-f", "-qq", "-o", trace, "--", bin, "serve", "--config", filepath.Join(dir, "beamgate.yaml"))
	cmd.Dir = dir
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()

	var addr string
	if !waitFor(60*time.Second, func() bool {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			return true
		}
		select {
		case err := <-exited:
			stopped = true
			if strings.Contains(logs.String(), "ptrace") {
				t.Skipf("strace cannot trace here (ptrace refused): %v\n%s", err, logs.String())
			}
			t.Fatalf("beamgate serve under strace exited: %v\n%s", err, logs.String())
		default:
		}
		return false
	}) {
		t.Fatalf("beamgate serve did not listen within 60 s:\n%s", logs.String())
	}
	// The gateway's pid: the first line of the trace is its execve.
	var pid int
	if !waitFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(trace)
		if m := straceCallRE.FindSubmatch(b); m != nil {
			pid, _ = strconv.Atoi(string(m[1]))
		}
		return pid > 0
	}) {
		t.Fatal("no pid in the strace output")
	}

	client, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{
		User:            "ops",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), // a host key created a second ago
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh to the gateway: %v\n%s", err, logs.String())
	}
	for _, command := range []string{"cookie", "nodes"} {
		sess, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.CombinedOutput(command)
		sess.Close()
		if command == "cookie" && (err != nil || len(bytes.TrimSpace(out)) == 0) {
			t.Errorf("ssh ops@gateway cookie: %v %q", err, out)
		}
		t.Logf("ssh ops@gateway %s: %v\n%s", command, err, out)
	}
	client.Close()

	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return strings.Contains(logs.String(), "audit log rotated on SIGHUP") }) {
		t.Errorf("no audit rotation within 30 s of SIGHUP:\n%s", logs.String())
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("beamgate serve under strace: %v\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("beamgate serve still runs 60 s after SIGTERM:\n%s", logs.String())
	}

	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	used := map[string]int{}
	badCalls := map[string]string{}
	badFamilies := map[string]string{}
	badProc := map[string]string{}
	fallbacks := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m := straceCallRE.FindStringSubmatch(line)
		if m == nil {
			continue // signals, exits
		}
		used[m[2]]++
		if !allowed[m[2]] {
			badCalls[m[2]] = line
		}
		if s := socketRE.FindStringSubmatch(line); s != nil && !families[s[1]] {
			badFamilies[s[1]] = line
		}
		if p := procOpenRE.FindStringSubmatch(line); p != nil && !procPidRE.MatchString(p[1]) {
			if why, ok := procFallbacks[p[1]]; ok {
				fallbacks[p[1]] = why
			} else {
				badProc[p[1]] = line
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(used) < 20 {
		t.Fatalf("only %d distinct system calls in the trace; strace output not understood", len(used))
	}
	names := make([]string, 0, len(used))
	for c := range used {
		names = append(names, c)
	}
	slices.Sort(names)
	t.Logf("%d distinct system calls: %s", len(names), strings.Join(names, " "))
	for p, why := range fallbacks {
		t.Logf("reads %s, hidden by ProcSubset=pid: %s", p, why)
	}
	for c, line := range badCalls {
		t.Errorf("beamgate calls %s, which SystemCallFilter=%q refuses: %s", c, unitValues(unit, "SystemCallFilter"), line)
	}
	for fam, line := range badFamilies {
		t.Errorf("beamgate opens an %s socket, which RestrictAddressFamilies= refuses: %s", fam, line)
	}
	for p, line := range badProc {
		t.Errorf("beamgate opens %s, hidden by ProcSubset=pid: %s", p, line)
	}
}
