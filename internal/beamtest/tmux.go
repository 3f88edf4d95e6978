package beamtest

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmuxSession is the name of the one session a Tmux runs.
const tmuxSession = "beamtest"

// tmuxPoll is how often Tmux.WaitFor captures the pane.
const tmuxPoll = 100 * time.Millisecond

// Tmux is a private tmux server (its own socket, no configuration file)
// running one detached session of a fixed size: a real terminal for
// commands that draw on one. The server is killed in t.Cleanup; tmux runs
// it as a daemon, outside the test's process groups, so if the test binary
// dies first it lives on until the session's command exits.
type Tmux struct {
	t    testing.TB
	sock string
}

// RequireTmux skips the test when tmux is not installed.
func RequireTmux(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skipf("tmux not installed (Debian tmux): %v", err)
	}
}

// StartTmux runs the shell command line cmdline in a new width×height tmux
// session. It skips the test when tmux is not installed. A command that
// exits closes the session, so end cmdline with "; sleep N" to keep its
// last screen readable.
func StartTmux(t testing.TB, width, height int, cmdline string) *Tmux {
	t.Helper()
	RequireTmux(t)
	m := &Tmux{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	if out, err := m.Run("new-session", "-d", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height),
		"-s", tmuxSession, cmdline); err != nil {
		t.Fatalf("beamtest: tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = m.Run("kill-server") })
	return m
}

// Run runs a tmux command against this server and returns its combined
// output.
func (m *Tmux) Run(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-S", m.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	return string(out), err
}

// Capture returns the text the pane shows now.
func (m *Tmux) Capture() string {
	m.t.Helper()
	out, err := m.Run("capture-pane", "-p", "-t", tmuxSession)
	if err != nil {
		m.t.Fatalf("beamtest: tmux capture-pane: %v\n%s", err, out)
	}
	return out
}

// SendKeys types keys into the pane, in tmux send-keys notation ("C-c",
// "Enter", or literal text).
func (m *Tmux) SendKeys(keys ...string) {
	m.t.Helper()
	if out, err := m.Run(append([]string{"send-keys", "-t", tmuxSession}, keys...)...); err != nil {
		m.t.Fatalf("beamtest: tmux send-keys %q: %v\n%s", keys, err, out)
	}
}

// WaitFor captures the pane until match accepts the screen or timeout has
// passed, and returns the last screen and whether match accepted it.
func (m *Tmux) WaitFor(timeout time.Duration, match func(screen string) bool) (screen string, ok bool) {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		screen = m.Capture()
		if match(screen) {
			return screen, true
		}
		if time.Now().After(deadline) {
			return screen, false
		}
		time.Sleep(tmuxPoll)
	}
}

// WaitContains waits, at most timeout, until the pane shows s and returns
// the screen; otherwise it fails the test with the last screen.
func (m *Tmux) WaitContains(timeout time.Duration, s string) string {
	m.t.Helper()
	screen, ok := m.WaitFor(timeout, func(screen string) bool { return strings.Contains(screen, s) })
	if !ok {
		m.t.Fatalf("beamtest: %q not on the tmux screen after %v:\n%s", s, timeout, screen)
	}
	return screen
}

// watchRefresh matches the header line a `--watch` view redraws on every
// refresh: "every 1s, refresh 3 at 12:00:01 ...".
var watchRefresh = regexp.MustCompile(`refresh (\d+) at`)

// WaitRefresh waits, at most timeout, until the pane shows a `--watch`
// view whose header counts a refresh after `after` and that has a line
// containing row. It returns the last screen, its refresh number and
// whether it got there.
func (m *Tmux) WaitRefresh(timeout time.Duration, after int, row string) (screen string, n int, ok bool) {
	m.t.Helper()
	screen, ok = m.WaitFor(timeout, func(s string) bool {
		sub := watchRefresh.FindStringSubmatch(s)
		if sub == nil || !strings.Contains(s, row) {
			return false
		}
		n, _ = strconv.Atoi(sub[1])
		return n > after
	})
	return screen, n, ok
}

// CheckRedrawnInPlace checks that each captured `--watch` screen shows
// exactly one header, on its first line, starting with header (such as
// "every 1s, refresh"): the view redraws in place instead of scrolling.
func CheckRedrawnInPlace(t testing.TB, header string, screens ...string) {
	t.Helper()
	for _, s := range screens {
		if c := strings.Count(s, "refresh "); c != 1 {
			t.Errorf("screen shows %d headers, want 1 (redrawn in place):\n%s", c, s)
		}
		if !strings.HasPrefix(s, header) {
			t.Errorf("header %q not on the first line:\n%s", header, s)
		}
	}
}

// RowValue returns the number in the last column of the first line of
// screen that contains row and ends in a number, failing the test when
// there is none.
func RowValue(t testing.TB, screen, row string) int {
	t.Helper()
	for _, l := range strings.Split(screen, "\n") {
		if !strings.Contains(l, row) {
			continue
		}
		f := strings.Fields(l)
		if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
			return n
		}
	}
	t.Fatalf("no %s row ending in a number:\n%s", row, screen)
	return 0
}
