// Package otp gives tests real Erlang/OTP and Elixir releases other than
// the host's. The host (Debian 12) has OTP 25 and Elixir 1.14; OTP 27 and
// OTP 29 come from Debian trixie and sid, installed with debootstrap into
// chroots that are built once, cached between runs, and entered through
// small wrapper scripts usable as beamtest.Options.Erl and Options.Elixir.
//
// A wrapper enters a private mount namespace (unshare --mount), bind-mounts
// the host's temporary directory at the same path inside the chroot (so the
// node's private HOME, working directory and inetrc from t.TempDir() are
// where beamtest says), mounts /proc, and execs the chroot's erl or elixir.
// The mounts die with the node's process: nothing is left mounted on the
// host. The chroot shares the host's network, so its nodes bind loopback
// addresses and register with the host's epmd as usual.
//
// The chroot releases are opt-in so that `make test` stays fast: they are
// used (and built on first use) only when BEAMGATE_MATRIX=1, which
// `make matrix` sets. Building and entering chroots needs root and
// debootstrap. The packages come from the Debian mirror named by
// $BEAMGATE_DEBIAN_MIRROR or, when that is unset, from the mirror of the
// host's main Debian suite in apt's own sources (mirror.go); with neither,
// building fails with an error naming the variable. When a chroot cannot
// be built, Erl and Elixir skip the test with the reason.
package otp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnableEnv is the environment variable that enables the chroot releases.
const EnableEnv = "BEAMGATE_MATRIX"

// Enabled reports whether tests may use (and build) the chroot releases.
func Enabled() bool { return os.Getenv(EnableEnv) == "1" }

// Releases lists the OTP releases Erl and Elixir accept, oldest first.
var Releases = []string{"25", "27", "29"}

// release is where one OTP release comes from.
type release struct {
	suite string // Debian suite of the chroot; "" for the host's own
}

var releases = map[string]release{
	"25": {},                // Debian 12 host: OTP 25.2.3, Elixir 1.14
	"27": {suite: "trixie"}, // OTP 27.3.4, Elixir 1.18
	"29": {suite: "sid"},    // OTP 29.1.2, Elixir 1.20
}

// Packages installed into every chroot: erlang-runtime-tools for
// observer_backend (production nodes need it), elixir for iex engineers.
var chrootPackages = []string{"erlang-base", "erlang-runtime-tools", "elixir"}

// buildTimeout bounds one debootstrap run, downloads included.
const buildTimeout = 20 * time.Minute

// CacheDir is where chroots are built and kept: $BEAMGATE_OTP_CACHE, or
// /var/cache/beamgate-otp. Each suite gets SUITE/ (the root), SUITE.ok (the
// stamp written after a successful build), SUITE.lock and SUITE.log.
func CacheDir() string {
	if d := os.Getenv("BEAMGATE_OTP_CACHE"); d != "" {
		return d
	}
	return "/var/cache/beamgate-otp"
}

// Erl returns an erl binary of the given OTP release for
// beamtest.Options.Erl: "erl" for the host's release, else a wrapper that
// runs the chroot's erl. It skips t if the chroot cannot be built.
func Erl(t testing.TB, rel string) string {
	t.Helper()
	return launcher(t, rel, "erl")
}

// Elixir returns the elixir launcher that runs on the given OTP release
// (Elixir 1.14 on 25, 1.18 on 27, 1.20 on 29) for beamtest.Options.Elixir.
// Leave Options.Erl empty with it: a chroot's elixir finds its own erl.
func Elixir(t testing.TB, rel string) string {
	t.Helper()
	return launcher(t, rel, "elixir")
}

// Iex returns the iex launcher of the given OTP release's Elixir, for
// running an interactive iex (a remote shell) in a terminal.
func Iex(t testing.TB, rel string) string {
	t.Helper()
	return launcher(t, rel, "iex")
}

// Versions reports the full OTP and Elixir versions of a release, read
// from its installation ("27.3.4", "1.18.3"); empty when unknown.
func Versions(t testing.TB, rel string) (otpVersion, elixirVersion string) {
	t.Helper()
	root := Root(t, rel)
	if root == "" {
		root = "/"
	}
	return otpVersionAt(root), debVersion(root, "elixir")
}

// Root returns the chroot directory of a release, building it if needed,
// or "" for the host's own release.
func Root(t testing.TB, rel string) string {
	t.Helper()
	r, ok := releases[rel]
	if !ok {
		t.Fatalf("otp: unknown OTP release %q (have %v)", rel, Releases)
	}
	if r.suite == "" {
		return ""
	}
	if !Enabled() {
		t.Skipf("otp: OTP %s runs in a Debian %s chroot; set %s=1 (make matrix) to build and use it", rel, r.suite, EnableEnv)
	}
	root, err := ensure(r.suite)
	if err != nil {
		t.Skipf("otp: OTP %s (Debian %s chroot) unavailable, skipping: %v", rel, r.suite, err)
	}
	return root
}

func launcher(t testing.TB, rel, prog string) string {
	t.Helper()
	root := Root(t, rel)
	if root == "" {
		return prog
	}
	path, err := writeWrapper(t.TempDir(), root, prog)
	if err != nil {
		t.Fatalf("otp: %s wrapper for OTP %s: %v", prog, rel, err)
	}
	return path
}

// builds remembers each suite's outcome in this process, failures too, so
// a failing build is tried once per test binary, not once per test.
var builds struct {
	sync.Mutex
	done map[string]buildResult
}

type buildResult struct {
	root string
	err  error
}

func ensure(suite string) (string, error) {
	builds.Lock()
	defer builds.Unlock()
	if r, ok := builds.done[suite]; ok {
		return r.root, r.err
	}
	root, err := build(suite)
	if builds.done == nil {
		builds.done = map[string]buildResult{}
	}
	builds.done[suite] = buildResult{root, err}
	return root, err
}

// stampText is the stamp a build of suite writes last; a root whose stamp
// differs (another package list, an interrupted build) is rebuilt.
func stampText(suite string) string {
	return fmt.Sprintf("beamgate internal/otp chroot\nsuite=%s\ninclude=%s\n", suite, strings.Join(chrootPackages, ","))
}

// build makes CacheDir()/suite unless a finished build is there. It holds
// an exclusive flock on suite.lock throughout, so parallel test binaries
// build each suite once and wait for each other.
func build(suite string) (string, error) {
	dir := CacheDir()
	root := filepath.Join(dir, suite)
	stamp := root + ".ok"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if os.Geteuid() != 0 {
		if ok, _ := stamped(stamp, suite); !ok {
			return "", errors.New("building a chroot needs root")
		}
		return "", errors.New("entering a chroot needs root")
	}
	for _, tool := range []string{"unshare", "chroot", "mount"} {
		if _, err := lookSbin(tool); err != nil {
			return "", fmt.Errorf("%s not found: install util-linux and coreutils", tool)
		}
	}
	lock, err := os.OpenFile(root+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if ok, err := stamped(stamp, suite); err != nil {
		return "", err
	} else if ok {
		return root, nil
	}
	debootstrap, err := lookSbin("debootstrap")
	if err != nil {
		return "", errors.New("debootstrap not found: install Debian package debootstrap")
	}
	mirrorURL, mirrorSrc, err := mirror()
	if err != nil {
		return "", err
	}
	tmp := root + ".tmp"
	for _, p := range []string{stamp, tmp, root} {
		if err := os.RemoveAll(p); err != nil {
			return "", fmt.Errorf("clear the old chroot: %w", err)
		}
	}
	logPath := root + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "beamgate: debootstrap %s from %s (mirror from %s)\n", suite, mirrorURL, mirrorSrc)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, debootstrap, "--variant=minbase",
		"--include="+strings.Join(chrootPackages, ","), suite, tmp, mirrorURL)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Stdin = nil
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("debootstrap %s: %v (log: %s)", suite, err, logPath)
	}
	for _, p := range []string{"usr/bin/erl", "usr/bin/elixir", "usr/lib/erlang/releases"} {
		if _, err := os.Stat(filepath.Join(tmp, p)); err != nil {
			return "", fmt.Errorf("debootstrap %s: %s missing from the chroot (log: %s)", suite, p, logPath)
		}
	}
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	if err := os.WriteFile(stamp, []byte(stampText(suite)), 0o644); err != nil {
		return "", err
	}
	return root, nil
}

func stamped(stamp, suite string) (bool, error) {
	b, err := os.ReadFile(stamp)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return string(b) == stampText(suite), nil
}

// lookSbin finds an administration tool even when PATH lacks the sbin
// directories.
func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// enterScript runs inside the private mount namespace: it makes the host's
// temporary directory and /proc visible in the chroot, then runs the
// program from the caller's working directory (or / if it is elsewhere).
// $1 is the program; the rest are its arguments.
const enterScript = `set -e
root=%s
tmp=%s
mount --bind "$tmp" "$root$tmp"
mount -t proc proc "$root/proc"
dir=$(pwd -P)
exec %s "$root" /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$dir" "$@"
`

// writeWrapper writes dir/prog, a script running the chroot's
// /usr/bin/prog through enterScript in a new private mount namespace.
func writeWrapper(dir, root, prog string) (string, error) {
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(root, tmp), 0o1777); err != nil {
		return "", err
	}
	unshare, err := lookSbin("unshare")
	if err != nil {
		return "", err
	}
	chroot, err := lookSbin("chroot")
	if err != nil {
		return "", err
	}
	enter := filepath.Join(dir, "enter-"+prog+".sh")
	if err := os.WriteFile(enter, []byte(fmt.Sprintf(enterScript, shQuote(root), shQuote(tmp), shQuote(chroot))), 0o644); err != nil {
		return "", err
	}
	wrapper := filepath.Join(dir, prog)
	script := fmt.Sprintf("#!/bin/sh\n# %s from the chroot %s (beamgate internal/otp)\nexec %s --mount --propagation private /bin/sh %s /usr/bin/%s \"$@\"\n",
		prog, root, shQuote(unshare), shQuote(enter), prog)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return "", err
	}
	return wrapper, nil
}

func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// otpVersionAt reads the full OTP version of the installation under root.
func otpVersionAt(root string) string {
	files, _ := filepath.Glob(filepath.Join(root, "usr/lib/erlang/releases/*/OTP_VERSION"))
	if len(files) == 0 {
		return ""
	}
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// debVersion reads a package's upstream version from the dpkg database
// under root: "1.18.3" for "1.18.3.dfsg-3".
func debVersion(root, pkg string) string {
	f, err := os.Open(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	in := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			in = false
		case line == "Package: "+pkg:
			in = true
		case in && strings.HasPrefix(line, "Version: "):
			v := strings.TrimPrefix(line, "Version: ")
			if _, after, ok := strings.Cut(v, ":"); ok {
				v = after
			}
			if i := strings.IndexAny(v, "-+~"); i >= 0 {
				v = v[:i]
			}
			return strings.TrimSuffix(v, ".dfsg")
		}
	}
	return ""
}
