package handshake

// Handshakes against real OTP nodes (erl on PATH; skipped otherwise). All
// nodes bind loopback addresses; every process is stopped in t.Cleanup.

import (
	"beamgate/internal/beamtest"

	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startupTimeout bounds waiting for a node or epmd to come up.
const startupTimeout = 30 * time.Second

func needErl(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real BEAM tests skipped in -short mode")
	}
	for _, bin := range []string{"erl", "epmd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed: %v", bin, err)
		}
	}
}

func randomCookie(t *testing.T) string {
	t.Helper()
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "c" + hex.EncodeToString(b[:])
}

// process is an OS process started by a test.
type process struct {
	cmd  *exec.Cmd
	out  *beamtest.SyncBuffer
	done chan struct{} // closed when the process has exited
}

// startProcess starts name args with extra environment and stops it
// (SIGTERM, then SIGKILL) when the test ends.
func startProcess(t *testing.T, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), out: &beamtest.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out)
		}
	})
	return p
}

// wait waits for the process to exit on its own.
func (p *process) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(startupTimeout):
		t.Fatalf("process did not exit; output:\n%s", p.out)
	}
}

// prodNode is a real production-like node listening on 127.0.0.2.
type prodNode struct {
	name, addr, cookie string
	proc               *process
}

// startProdNode starts `erl -name prod@127.0.0.2` on a free port, with its
// own epmd on a free port.
func startProdNode(t *testing.T, cookie string) *prodNode {
	t.Helper()
	epmdPort := beamtest.FreePort(t)
	epmd := startProcess(t, nil, "epmd", "-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1")
	beamtest.WaitListening(t, fmt.Sprintf("127.0.0.1:%d", epmdPort), epmd.done, epmd.out.String)

	port := strconv.Itoa(beamtest.FreePortOn(t, "127.0.0.2"))
	env := []string{"ERL_EPMD_PORT=" + strconv.Itoa(epmdPort)}
	n := &prodNode{name: "prod@127.0.0.2", addr: "127.0.0.2:" + port, cookie: cookie}
	n.proc = startProcess(t, env, "erl", "-name", n.name, "-setcookie", cookie, "-start_epmd", "false",
		"-kernel", "inet_dist_use_interface", "{127,0,0,2}",
		"inet_dist_listen_min", port, "inet_dist_listen_max", port, "-noshell")
	beamtest.WaitListening(t, n.addr, n.proc.done, n.proc.out.String)
	return n
}

// recordingConn records every byte read from the wrapped connection: the
// real peer's side of a handshake, for the fuzz seed corpus.
type recordingConn struct {
	net.Conn
	read bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Write(p[:n])
	return n, err
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestInitiateRealNode(t *testing.T) {
	needErl(t)
	prod := startProdNode(t, randomCookie(t))

	dial := func(t *testing.T) *recordingConn {
		t.Helper()
		c, err := net.DialTimeout("tcp", prod.addr, startupTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &recordingConn{Conn: c}
	}
	const challenge = 3774219178
	cfg := InitiatorConfig{
		Name:      "gwtest@127.0.0.1",
		Creation:  0x5eed,
		Flags:     ClientFlags,
		Cookie:    prod.cookie,
		PeerName:  prod.name,
		challenge: func() (uint32, error) { return challenge, nil },
	}

	// Each subtest uses its own name: prod may not have noticed a closed
	// connection yet and would answer "alive".
	named := func(cfg InitiatorConfig, alive string) InitiatorConfig {
		cfg.Name = alive + "@127.0.0.1"
		return cfg
	}

	t.Run("ok", func(t *testing.T) {
		conn := dial(t)
		res, err := Initiate(testContext(t), conn, named(cfg, "gw_ok"))
		if err != nil {
			t.Fatalf("Initiate: %v", err)
		}
		if res.PeerName != prod.name {
			t.Errorf("PeerName = %q, want %q", res.PeerName, prod.name)
		}
		if res.PeerCreation == 0 {
			t.Error("PeerCreation = 0, want the creation epmd gave prod")
		}
		if missing := Mandatory25 &^ res.PeerFlags.Expand(); missing != 0 {
			t.Errorf("PeerFlags %v lack %v", res.PeerFlags, missing)
		}
		if res.Flags&Stripped != 0 || res.Flags&^ClientFlags != 0 {
			t.Errorf("negotiated Flags = %v, want a subset of ClientFlags", res.Flags)
		}
		if want := ClientFlags & res.PeerFlags.Expand(); res.Flags != want {
			t.Errorf("negotiated Flags = %v, want %v", res.Flags, want)
		}
		t.Logf("prod flags %#x (%v), creation %d", uint64(res.PeerFlags), res.PeerFlags, res.PeerCreation)
		writeSeed(t, "FuzzInitiator", "real-otp25-prod", uint32(challenge), prod.cookie, conn.read.Bytes())
	})

	t.Run("wrong cookie", func(t *testing.T) {
		bad := named(cfg, "gw_badcookie")
		bad.Cookie = "not-" + prod.cookie
		_, err := Initiate(testContext(t), dial(t), bad)
		if !errors.Is(err, ErrCookieRejected) {
			t.Fatalf("Initiate with a wrong cookie: err = %v, want ErrCookieRejected", err)
		}
		if strings.Contains(err.Error(), prod.cookie) {
			t.Errorf("error %q contains the cookie", err)
		}
	})

	t.Run("wrong name", func(t *testing.T) {
		bad := named(cfg, "gw_badname")
		bad.PeerName = "other@127.0.0.2"
		_, err := Initiate(testContext(t), dial(t), bad)
		if !errors.Is(err, ErrNameMismatch) {
			t.Fatalf("err = %v, want ErrNameMismatch", err)
		}
	})

	t.Run("alive", func(t *testing.T) {
		// A live connection from gw_alive; a second attempt gets "alive".
		first := named(cfg, "gw_alive")
		if _, err := Initiate(testContext(t), dial(t), first); err != nil {
			t.Fatalf("first Initiate: %v", err)
		}
		// Until prod's net_kernel has marked the first connection up it
		// still counts as pending and a second attempt gets "nok"; retry.
		var refused *RefusedError
		var err error
		for range 50 {
			_, err = Initiate(testContext(t), dial(t), first)
			if !errors.As(err, &refused) || refused.Status != StatusNok {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !errors.As(err, &refused) || refused.Status != StatusAlive {
			t.Fatalf("second Initiate with OnAlive nil: err = %v, want RefusedError{alive}", err)
		}
		again := first
		again.OnAlive = func() bool { return true }
		// The refused attempt leaves prod's net_kernel in up_pending until
		// it has seen that attempt's acceptor exit; an attempt arriving
		// before then is "already_pending", which OTP 25 answers by
		// closing the socket without a status (dist_util:mark_pending).
		// Retry on that EOF only.
		var conn *recordingConn
		for range 50 {
			conn = dial(t)
			_, err = Initiate(testContext(t), conn, again)
			if err == nil || !errors.Is(err, io.EOF) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("Initiate answering alive with true: %v", err)
		}
		writeSeed(t, "FuzzInitiator", "real-otp25-prod-alive", uint32(challenge), prod.cookie, conn.read.Bytes())
	})
}

// engineerEval is what the engineer node runs: connect to the fake node
// (the Go acceptor), report the result, stop.
const engineerEval = `R = net_kernel:connect_node('fake@127.0.0.3'), io:format("connect=~p~n", [R]), halt().`

func TestAcceptRealEngineer(t *testing.T) {
	needErl(t)
	const challenge = 0x0bad_cafe
	tests := []struct {
		name          string
		engCookie     string
		wantErr       error
		wantConnected string
	}{
		{name: "ok", engCookie: "", wantConnected: "connect=true"},
		{name: "wrong cookie", engCookie: "wrong", wantErr: ErrBadDigest, wantConnected: "connect=false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cookie := randomCookie(t)
			engCookie := cookie
			if tt.engCookie != "" {
				engCookie = tt.engCookie
			}
			port := beamtest.FreePortOn(t, "127.0.0.3", "127.0.0.1")
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.3:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })

			// -erl_epmd_port: no epmd at all. Point ERL_EPMD_PORT at a
			// closed port so the node cannot touch a shared epmd either.
			noEPMD := []string{"ERL_EPMD_PORT=" + strconv.Itoa(beamtest.FreePort(t))}
			eng := startProcess(t, noEPMD, "erl", "-name", "eng@127.0.0.1", "-setcookie", engCookie, "-hidden",
				"-start_epmd", "false", "-erl_epmd_port", strconv.Itoa(port),
				"-kernel", "inet_dist_use_interface", "{127,0,0,1}", "-noshell", "-eval", engineerEval)

			l.(*net.TCPListener).SetDeadline(time.Now().Add(startupTimeout))
			c, err := l.Accept()
			if err != nil {
				t.Fatalf("engineer never connected: %v", err)
			}
			t.Cleanup(func() { c.Close() })
			conn := &recordingConn{Conn: c}

			var asked []string
			res, err := Accept(testContext(t), conn, AcceptorConfig{
				Name:     "fake@127.0.0.3",
				Creation: 0x7777,
				Flags:    ClientFlags,
				Cookie: func(peer string) (string, bool) {
					asked = append(asked, peer)
					return cookie, true
				},
				challenge: func() (uint32, error) { return challenge, nil },
			})
			if want := []string{"eng@127.0.0.1"}; fmt.Sprint(asked) != fmt.Sprint(want) {
				t.Errorf("cookie asked for %q, want %q", asked, want)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Accept: err = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), cookie) {
					t.Errorf("error %q contains the cookie", err)
				}
				c.Close() // as OTP does: no ack
			} else {
				if err != nil {
					t.Fatalf("Accept: %v", err)
				}
				if res.PeerName != "eng@127.0.0.1" || res.PeerCreation == 0 {
					t.Errorf("peer = %q creation %d, want eng@127.0.0.1 with a non-zero creation", res.PeerName, res.PeerCreation)
				}
				if res.PeerFlags&Published != 0 {
					t.Errorf("hidden engineer announced PUBLISHED: %v", res.PeerFlags)
				}
				if missing := Mandatory25 &^ res.PeerFlags.Expand(); missing != 0 {
					t.Errorf("PeerFlags %v lack %v", res.PeerFlags, missing)
				}
				t.Logf("engineer flags %#x (%v), creation %d", uint64(res.PeerFlags), res.PeerFlags, res.PeerCreation)
				writeSeed(t, "FuzzAcceptor", "real-otp25-engineer", uint32(challenge), cookie, conn.read.Bytes())
			}
			eng.wait(t) // the engineer halts after printing; then we close
			if out := eng.out.String(); !strings.Contains(out, tt.wantConnected) {
				t.Errorf("engineer output %q, want %q", out, tt.wantConnected)
			}
		})
	}
}
