package beamtest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFreePortOn(t *testing.T) {
	t.Parallel()
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
	port := FreePortOn(t, "127.0.0.1", ProductionIP)
	for _, ip := range []string{"127.0.0.1", ProductionIP} {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("FreePortOn gave %d, not free on %s: %v", port, ip, err)
		}
		ln.Close()
	}
}

// fatalT records a Fatalf instead of failing the real test, and ends the
// goroutine that called it as testing.T would.
type fatalT struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalT) Helper() {}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = strings.TrimSpace(fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

// runFatal runs fn with a fatalT and returns its Fatalf message ("" when
// fn returned normally).
func runFatal(t *testing.T, fn func(tb testing.TB)) string {
	f := &fatalT{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); fn(f) }()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func TestWaitListening(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	WaitListening(t, ln.Addr().String(), nil, nil)

	// Nothing listens and the server has exited: fail at once, with its
	// output.
	exited := make(chan struct{})
	close(exited)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	start := time.Now()
	msg := runFatal(t, func(tb testing.TB) {
		WaitListening(tb, addr, exited, func() string { return "server log line" })
	})
	if !strings.Contains(msg, "exited before it listened") || !strings.Contains(msg, "server log line") {
		t.Errorf("WaitListening with an exited server: %q", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitListening waited %v for an exited server", d)
	}
}

func TestSyncBufferIsWriteSyncer(t *testing.T) {
	t.Parallel()
	var b SyncBuffer
	var ws interface {
		Write([]byte) (int, error)
		Sync() error
	} = &b
	if _, err := ws.Write([]byte("line\n")); err != nil || ws.Sync() != nil || b.String() != "line\n" {
		t.Fatalf("SyncBuffer = %q", b.String())
	}
}

func TestSSHHelpers(t *testing.T) {
	t.Parallel()
	RequireOpenSSH(t)
	dir := t.TempDir()
	key := NewSSHKey(t, dir, "alice")
	if key != filepath.Join(dir, "alice") {
		t.Errorf("NewSSHKey = %s", key)
	}
	if _, err := os.Stat(key); err != nil {
		t.Fatal(err)
	}
	if pub := PublicKey(t, key); !strings.HasPrefix(pub, "ssh-ed25519 ") || !strings.HasSuffix(pub, " alice") {
		t.Errorf("PublicKey = %q", pub)
	}
	args := SSHClientArgs(2222, key, "-N", "alice@127.0.0.1")
	joined := " " + strings.Join(args, " ") + " "
	for _, want := range []string{"-F /dev/null", "-p 2222", "-i " + key, "-o BatchMode=yes", "-o StrictHostKeyChecking=no"} {
		if !strings.Contains(joined, " "+want+" ") {
			t.Errorf("SSHClientArgs lacks %q: %q", want, args)
		}
	}
	if got := args[len(args)-2:]; !slices.Equal(got, []string{"-N", "alice@127.0.0.1"}) {
		t.Errorf("SSHClientArgs ends with %q, want the extra arguments", got)
	}
}

func TestModuleRoot(t *testing.T) {
	t.Parallel()
	root := ModuleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(b), "module beamgate\n") {
		t.Fatalf("ModuleRoot = %s: go.mod %v %.40q", root, err, b)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "beamgate")); err != nil {
		t.Fatal(err)
	}
}

func TestTmux(t *testing.T) {
	t.Parallel()
	RequireTmux(t)
	t.Run("send keys", func(t *testing.T) {
		t.Parallel()
		tm := StartTmux(t, 80, 24, "cat")
		tm.SendKeys("beamtest-typed", "Enter")
		if s := tm.WaitContains(10*time.Second, "beamtest-typed"); !strings.Contains(s, "beamtest-typed") {
			t.Fatalf("screen:\n%s", s)
		}
		if _, ok := tm.WaitFor(300*time.Millisecond, func(s string) bool { return strings.Contains(s, "never shown") }); ok {
			t.Error("WaitFor accepted a screen that does not match")
		}
	})
	t.Run("watch screens", func(t *testing.T) {
		t.Parallel()
		// A stand-in for a --watch view: it clears the screen and redraws
		// its header and a growing row.
		tm := StartTmux(t, 80, 24, `for i in $(seq 1 20); do clear; printf 'every 1s, refresh %d at now\nhog %d\n' $i $((i*10)); sleep 0.3; done; sleep 30`)
		first, n1, ok := tm.WaitRefresh(10*time.Second, 0, "hog")
		if !ok {
			t.Fatalf("no refresh on screen:\n%s", first)
		}
		second, n2, ok := tm.WaitRefresh(10*time.Second, n1, "hog")
		if !ok || n2 <= n1 {
			t.Fatalf("no refresh after %d (got %d, %v) on screen:\n%s", n1, n2, ok, second)
		}
		CheckRedrawnInPlace(t, "every 1s, refresh", first, second)
		if q1, q2 := RowValue(t, first, "hog"), RowValue(t, second, "hog"); q1 != n1*10 || q2 != n2*10 {
			t.Errorf("RowValue = %d, %d at refreshes %d, %d", q1, q2, n1, n2)
		}
	})
}

func TestMatrixTable(t *testing.T) {
	versions := func(t testing.TB, rel string) (string, string) {
		if rel == "29" {
			return "", "" // unknown: the table falls back to the release
		}
		return rel + ".1", "1." + rel
	}
	out := filepath.Join(t.TempDir(), "matrix.md")
	t.Setenv(MatrixOutEnv, out)
	m := NewMatrix([]string{"25", "27", "29"}, versions)
	ran := map[string]bool{}
	m.RunErl(t, "25", "27", func(t *testing.T) { ran[t.Name()] = true })
	m.RunErl(t, "29", "25", func(t *testing.T) { ran[t.Name()] = true; t.Skip("chroot unavailable") })
	m.RunIex(t, "27", "27", func(t *testing.T) { ran[t.Name()] = true })
	for _, name := range []string{"TestMatrixTable/erl25/prod27", "TestMatrixTable/erl29/prod25", "TestMatrixTable/iex-otp27/prod27"} {
		if !ran[name] {
			t.Errorf("subtest %s did not run (ran %v)", name, ran)
		}
	}
	md := m.Markdown("OTP interop matrix through beamgate")
	for _, want := range []string{
		"OTP interop matrix through beamgate, " + time.Now().UTC().Format("2006-01-02") + " (UTC): 1 of 3 cells did not pass (",
		"| engineer \\ production | OTP 25.1 | OTP 27.1 | OTP 29 |\n|---|---|---|---|\n",
		"| `erl` OTP 25.1 | – | ✓ | – |\n",
		"| `erl` OTP 29 | skipped (chroot unavailable) | – | – |\n",
		"| `iex` Elixir 1.27 on OTP 27.1 | – | ✓ | – |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "`erl` OTP 25.1") > strings.Index(md, "`erl` OTP 29") {
		t.Errorf("rows are not in run order:\n%s", md)
	}

	m.Report(t, "first", false)
	m.Report(t, "second", true)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); !strings.HasPrefix(got, "first, ") || !strings.Contains(got, "|\n\nsecond, ") {
		t.Errorf("%s after Report replace then append:\n%s", MatrixOutEnv, got)
	}
	m.Report(t, "again", false)
	if b, _ := os.ReadFile(out); !strings.HasPrefix(string(b), "again, ") || strings.Contains(string(b), "first") {
		t.Errorf("Report without append did not replace the file:\n%s", b)
	}
}
