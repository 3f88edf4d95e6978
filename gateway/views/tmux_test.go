package views

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWatchInTmux runs top --watch 1s in a real terminal (a tmux pane),
// through the hidden-node client against a real production node, and
// captures the screen twice: the second capture shows a later refresh
// and a longer mailbox, drawn in place (one header, no scrolling).
func TestWatchInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not found")
	}
	f := startFixture(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "watchcmd")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/watchcmd").CombinedOutput(); err != nil {
		t.Fatalf("build watchcmd: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "tmux.sock")
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-S", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		return string(out), err
	}
	cmdline := strings.Join([]string{"WATCHCMD_COOKIE=" + testCookie, bin,
		"-node", "beamgate_tmux@127.0.0.7", "-target", prodName, "-epmd", f.epmdAddr,
		"-audit", filepath.Join(dir, "audit.log"), "-for", "40s",
		"top", "--by", "message_queue_len", "-n", "3", "--watch", "1s",
		"; sleep 30"}, " ")
	if out, err := tmux("new-session", "-d", "-x", "120", "-y", "30", "-s", "views", cmdline); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { tmux("kill-server") })

	refresh := regexp.MustCompile(`refresh (\d+) at`)
	capture := func(after int) (screen string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			out, err := tmux("capture-pane", "-p", "-t", "views")
			if err != nil {
				t.Fatalf("capture-pane: %v\n%s", err, out)
			}
			if m := refresh.FindStringSubmatch(out); m != nil {
				if n, _ := strconv.Atoi(m[1]); n > after && strings.Contains(out, "mailbox_hog") {
					return out, n
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		out, _ := tmux("capture-pane", "-p", "-t", "views")
		t.Fatalf("no refresh after %d on screen:\n%s", after, out)
		return "", 0
	}
	first, n1 := capture(0)
	second, n2 := capture(n1)
	t.Logf("first capture (refresh %d):\n%s", n1, strings.TrimRight(first, "\n "))
	t.Logf("second capture (refresh %d):\n%s", n2, strings.TrimRight(second, "\n "))
	for _, s := range []string{first, second} {
		if c := strings.Count(s, "refresh "); c != 1 {
			t.Errorf("screen shows %d headers, want 1 (redrawn in place):\n%s", c, s)
		}
		if !strings.HasPrefix(s, "every 1s, refresh") {
			t.Errorf("header not on the first line:\n%s", s)
		}
	}
	if q1, q2 := mailboxLen(t, first), mailboxLen(t, second); q2 <= q1 {
		t.Errorf("mailbox_hog's queue did not grow between refreshes: %d then %d", q1, q2)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.log")); err != nil {
		t.Errorf("watchcmd wrote no audit log: %v", err)
	}
}

func mailboxLen(t *testing.T, screen string) int {
	t.Helper()
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, "mailbox_hog") {
			fields := strings.Fields(l)
			n, err := strconv.Atoi(fields[len(fields)-1])
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no mailbox_hog row:\n%s", screen)
	return 0
}
