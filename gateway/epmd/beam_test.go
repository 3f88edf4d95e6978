package epmd

import (
	"beamgate/internal/beamtest"

	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run real OTP programs (epmd, erl) on loopback. They skip
// when the programs are not installed.

func requireProgram(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
	return path
}

// startChild starts a long-running program that the test kills and reaps
// in cleanup. It returns the program's combined output so far on demand.
func startChild(t *testing.T, epmdPort int, name string, args ...string) *beamtest.SyncBuffer {
	t.Helper()
	cmd := exec.Command(requireProgram(t, name), args...)
	cmd.Env = childEnv(t, epmdPort)
	out := new(beamtest.SyncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s %q output:\n%s", name, args, out.String())
		}
	})
	return out
}

// childEnv points OTP programs at epmd on epmdPort with a private HOME.
func childEnv(t *testing.T, epmdPort int) []string {
	return []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + t.TempDir(),
		"ERL_EPMD_PORT=" + strconv.Itoa(epmdPort),
	}
}

// eventually retries f every 50 ms until it returns nil, at most n times.
func eventually(t *testing.T, n int, what string, f func() error) {
	t.Helper()
	var err error
	for range n {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// erlArgs are the flags every test node gets: no epmd auto-start (the test
// owns epmd), a fixed cookie, no shell, distribution bound to ip.
func erlArgs(sname, ip string, extra ...string) []string {
	return append([]string{
		"-sname", sname, "-setcookie", "x", "-noshell", "-start_epmd", "false",
		"-kernel", "inet_dist_use_interface", "{" + strings.ReplaceAll(ip, ".", ",") + "}",
	}, extra...)
}

func TestClientAgainstRealEPMD(t *testing.T) {
	requireProgram(t, "erl")
	port := beamtest.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	startChild(t, port, "epmd", "-port", strconv.Itoa(port), "-address", "127.0.0.1")
	ctx := context.Background()
	eventually(t, 200, "epmd up", func() error { _, err := ListNames(ctx, addr); return err })

	startChild(t, port, "erl", erlArgs("prod", "127.0.0.2")...)
	var distPort int
	eventually(t, 600, "prod registered", func() (err error) {
		distPort, err = LookupPort(ctx, addr, "prod")
		return err
	})
	// The port epmd hands out is where prod's distribution listens.
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(distPort)))
	if err != nil {
		t.Fatalf("prod's distribution port %d: %v", distPort, err)
	}
	conn.Close()

	names, err := ListNames(ctx, addr)
	if err != nil {
		t.Fatalf("ListNames: %v", err)
	}
	if want := []NameEntry{{Name: "prod", Port: distPort}}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("ListNames = %v, want %v", names, want)
	}
	if _, err := LookupPort(ctx, addr, "nosuchnode"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LookupPort(nosuchnode) = %v, want ErrNotFound", err)
	}
	if _, err := LookupPort(ctx, addr, "bad@name"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("LookupPort(bad@name) = %v, want ErrMalformed", err)
	}
}

// serveFace serves the face that newFace builds for the listener's port on
// a loopback listener until the test ends. It returns the port and a
// channel of Serve results.
func serveFace(t *testing.T, newFace func(port int) *Face) (int, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	f := newFace(port)
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan error, 64)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				err := f.Serve(ctx, conn)
				select {
				case results <- err:
				default:
				}
			})
		}
	})
	t.Cleanup(func() {
		cancel()
		l.Close()
		wg.Wait()
	})
	return port, results
}

func TestRealErlAgainstFace(t *testing.T) {
	requireProgram(t, "erl")
	var obs observations
	facePort, results := serveFace(t, func(port int) *Face {
		f := testFace(&obs)
		f.EPMDPort = uint16(port) // net_adm:names/0 checks it
		return f
	})

	// The engineer's node registers with the face, asks it for names and
	// ports, and reports what it saw.
	const eval = `io:format("alive ~p~n", [erlang:is_alive()]),` +
		`io:format("names ~p~n", [net_adm:names()]),` +
		`io:format("prod ~p~n", [erl_epmd:port_please("prod", {127,0,0,1})]),` +
		`io:format("secret ~p~n", [erl_epmd:port_please("secret", {127,0,0,1})]),` +
		`halt().`
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireProgram(t, "erl"), erlArgs("eng", "127.0.0.3", "-hidden", "-eval", eval)...)
	cmd.Env = childEnv(t, facePort)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("erl: %v\n%s", err, out)
	}
	want := "alive true\n" +
		"names {ok,[{\"prod\",9200}]}\n" +
		"prod {port,9200,6}\n" +
		"secret noport\n"
	if string(out) != want {
		t.Fatalf("erl printed:\n%s\nwant:\n%s", out, want)
	}

	// Three short exchanges plus the registration, which ended only when
	// the node halted: every Serve returned nil.
	for range 4 {
		select {
		case err := <-results:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("a Serve did not return; observed %q", obs.list())
		}
	}
	got := obs.list()
	wantObs := map[string]bool{
		"ALIVE2_REQ answered":        true,
		"NAMES_REQ answered":         true,
		"PORT_PLEASE2_REQ answered":  true,
		"PORT_PLEASE2_REQ not_found": true,
	}
	if len(got) != len(wantObs) {
		t.Fatalf("observed %q, want %v", got, wantObs)
	}
	for _, o := range got {
		if !wantObs[o] {
			t.Fatalf("observed %q, want %v", got, wantObs)
		}
	}
}

// TestRealErlRegistrationHeld checks that an engineer's node started
// against the face stays up: its registration socket is held open.
func TestRealErlRegistrationHeld(t *testing.T) {
	requireProgram(t, "erl")
	var (
		mu   sync.Mutex
		reqs []*Alive2Req
	)
	f := &Face{Observe: func(req Request, outcome string) {
		if a, ok := req.(*Alive2Req); ok && outcome == OutcomeAnswered {
			mu.Lock()
			reqs = append(reqs, a)
			mu.Unlock()
		}
	}}
	facePort, results := serveFace(t, func(int) *Face { return f })
	out := startChild(t, facePort, "erl", erlArgs("eng", "127.0.0.3", "-hidden")...)
	eventually(t, 600, "eng registered", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(reqs) == 0 {
			return errors.New("no ALIVE2_REQ yet")
		}
		return nil
	})
	mu.Lock()
	a := reqs[0]
	mu.Unlock()
	if a.Name != "eng" || a.NodeType != 77 || a.HighestVersion != 6 || a.LowestVersion != 5 || a.PortNo == 0 {
		t.Fatalf("ALIVE2_REQ = %+v", a)
	}
	// The node's distribution listener is up on the port it registered.
	eventually(t, 200, "eng's distribution listener", func() error {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.3", strconv.Itoa(int(a.PortNo))))
		if err == nil {
			c.Close()
		}
		return err
	})
	select {
	case err := <-results:
		t.Fatalf("registration ended while the node runs: %v\n%s", err, out)
	default:
	}
}

// TestRealEPMDToolRefused drives the face with epmd's own command-line
// client: -kill and -stop must not report success.
func TestRealEPMDToolRefused(t *testing.T) {
	epmd := requireProgram(t, "epmd")
	var obs observations
	facePort, _ := serveFace(t, func(int) *Face { return testFace(&obs) })
	for _, args := range [][]string{{"-kill"}, {"-stop", "prod"}, {"-names"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, epmd, append([]string{"-port", strconv.Itoa(facePort)}, args...)...)
		cmd.Env = childEnv(t, facePort)
		out, _ := cmd.CombinedOutput()
		cancel()
		t.Logf("epmd %v: %s", args, out)
		switch args[0] {
		case "-kill":
			if bytes.Contains(out, []byte("Killed")) {
				t.Errorf("epmd -kill reported success: %s", out)
			}
		case "-stop":
			if bytes.Contains(out, []byte("STOPPED")) {
				t.Errorf("epmd -stop reported success: %s", out)
			}
		case "-names":
			if !bytes.Contains(out, []byte("name prod at port 9200")) {
				t.Errorf("epmd -names: %s", out)
			}
		}
	}
	eventually(t, 200, "observations", func() error {
		if got := obs.list(); len(got) != 3 {
			return fmt.Errorf("observed %q", got)
		}
		return nil
	})
	want := []string{"KILL_REQ refused", "STOP_REQ refused", "NAMES_REQ answered"}
	if got := obs.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("observed %q, want %q", got, want)
	}
}
