package views

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// TestWatchInTmux runs top --watch 1s in a real terminal (a tmux pane),
// through the hidden-node client against a real production node, and
// captures the screen twice: the second capture shows a later refresh
// and a longer mailbox, drawn in place (one header, no scrolling).
func TestWatchInTmux(t *testing.T) {
	beamtest.RequireTmux(t)
	f := startFixture(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "watchcmd")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/watchcmd").CombinedOutput(); err != nil {
		t.Fatalf("build watchcmd: %v\n%s", err, out)
	}
	cmdline := strings.Join([]string{"WATCHCMD_COOKIE=" + testCookie, bin,
		"-node", "beamgate_tmux@127.0.0.7", "-target", prodName, "-epmd", f.epmdAddr,
		"-audit", filepath.Join(dir, "audit.log"), "-for", "40s",
		"top", "--by", "message_queue_len", "-n", "3", "--watch", "1s",
		"; sleep 30"}, " ")
	tm := beamtest.StartTmux(t, 120, 30, cmdline)

	// capture waits (bounded) for a screen showing a refresh after
	// `after` and mailbox_hog's row.
	capture := func(after int) (string, int) {
		t.Helper()
		screen, n, ok := tm.WaitRefresh(20*time.Second, after, "mailbox_hog")
		if !ok {
			t.Fatalf("no refresh after %d on screen:\n%s", after, screen)
		}
		return screen, n
	}
	first, n1 := capture(0)
	second, n2 := capture(n1)
	t.Logf("first capture (refresh %d):\n%s", n1, strings.TrimRight(first, "\n "))
	t.Logf("second capture (refresh %d):\n%s", n2, strings.TrimRight(second, "\n "))
	beamtest.CheckRedrawnInPlace(t, "every 1s, refresh", first, second)
	if q1, q2 := beamtest.RowValue(t, first, "mailbox_hog"), beamtest.RowValue(t, second, "mailbox_hog"); q2 <= q1 {
		t.Errorf("mailbox_hog's queue did not grow between refreshes: %d then %d", q1, q2)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.log")); err != nil {
		t.Errorf("watchcmd wrote no audit log: %v", err)
	}
}
