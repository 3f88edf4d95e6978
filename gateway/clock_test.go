package gateway

// Time-dependent behaviour of the front door, in a testing/synctest
// bubble: the SSH server and an x/crypto SSH client talk over net.Pipe,
// and the bubble's fake clock runs the idle timeout and the revocation
// list's stale limit in virtual time, without sleeping for real.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/config"
	"beamgate/internal/beamtest"

	"go.uber.org/zap/zaptest"
	gossh "golang.org/x/crypto/ssh"
)

// pipeListener hands the server in-memory connections (bufPipe), which
// block durably inside a synctest bubble as real sockets do not.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222} }

func (l *pipeListener) dial() net.Conn {
	server, client := bufPipe()
	l.conns <- server
	return client
}

// bufPipe is net.Pipe with buffering, as a socket has: both SSH peers send
// their version line before reading, which deadlocks on net.Pipe's
// synchronous writes. Its waits are sync.Cond waits, durable in a bubble.
func bufPipe() (net.Conn, net.Conn) {
	a, b := newHalf(), newHalf()
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
	return &bufConn{r: a, w: b, addr: addr}, &bufConn{r: b, w: a, addr: addr}
}

type half struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    bytes.Buffer
	closed bool
}

func newHalf() *half {
	h := &half{}
	h.cond = sync.NewCond(&h.mu)
	return h
}

func (h *half) close() {
	h.mu.Lock()
	h.closed = true
	h.cond.Broadcast()
	h.mu.Unlock()
}

type bufConn struct {
	r, w *half
	addr net.Addr
}

func (c *bufConn) Read(p []byte) (int, error) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	for c.r.buf.Len() == 0 && !c.r.closed {
		c.r.cond.Wait()
	}
	if c.r.buf.Len() == 0 {
		return 0, io.EOF
	}
	return c.r.buf.Read(p)
}

func (c *bufConn) Write(p []byte) (int, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if c.w.closed {
		return 0, net.ErrClosed
	}
	c.w.buf.Write(p)
	c.w.cond.Broadcast()
	return len(p), nil
}

func (c *bufConn) Close() error                     { c.r.close(); c.w.close(); return nil }
func (c *bufConn) LocalAddr() net.Addr              { return c.addr }
func (c *bufConn) RemoteAddr() net.Addr             { return c.addr }
func (c *bufConn) SetDeadline(time.Time) error      { return nil }
func (c *bufConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bufConn) SetWriteDeadline(time.Time) error { return nil }

// clockGateway is a front door on a pipe listener, inside the caller's
// bubble, with alice's key and the given extra configuration.
type clockGateway struct {
	srv    *Server
	l      *pipeListener
	alice  gossh.Signer
	audit  string
	served chan struct{}
}

func startClockGateway(t *testing.T, extraYAML string, rev RevocationSource, stale time.Duration) *clockGateway {
	t.Helper()
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	alice, err := gossh.NewSignerFromKey(userKey)
	if err != nil {
		t.Fatal(err)
	}
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	host, err := gossh.NewSignerFromKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yaml := strings.Replace(beamtest.ExampleConfig, beamtest.ExampleKey,
		strings.TrimSpace(string(gossh.MarshalAuthorizedKey(alice.PublicKey()))), 1) + extraYAML
	cfg, err := config.Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	alog, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Config: cfg, HostSigner: host, Audit: alog, Relay: &fakeRelay{}, Log: zaptest.NewLogger(t),
		Gateway:   cookies.Gateway{Secret: []byte("0123456789abcdef0123456789abcdef"), Window: time.Hour},
		Reachable: func(context.Context, *config.Node) bool { return false }}
	if rev != nil {
		opts.Revocations, opts.RevocationInterval, opts.RevocationStaleLimit = rev, 10*time.Second, stale
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	g := &clockGateway{srv: srv, l: newPipeListener(), alice: alice, audit: filepath.Join(dir, "audit.jsonl"), served: make(chan struct{})}
	go func() { srv.Serve(g.l); close(g.served) }()
	t.Cleanup(func() {
		srv.Close()
		g.l.Close()
		<-g.served
		alog.Close()
	})
	return g
}

// login opens an SSH connection as alice over a pipe.
func (g *clockGateway) login() (*gossh.Client, error) {
	sc, chans, reqs, err := gossh.NewClientConn(g.l.dial(), "bastion:2222", &gossh.ClientConfig{
		User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(g.alice)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
	})
	if err != nil {
		return nil, err
	}
	return gossh.NewClient(sc, chans, reqs), nil
}

func (g *clockGateway) auditText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(g.audit)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// An idle connection (no channel open) is closed once idle_timeout has
// passed, and not before; keepalives alone do not keep it open.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startClockGateway(t, "limits:\n  idle_timeout: 10m\n  keepalive_interval: 30s\n", nil, 0)
		c, err := g.login()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		closed := make(chan time.Time, 1)
		go func() { c.Wait(); closed <- time.Now() }()

		time.Sleep(9*time.Minute + 50*time.Second)
		synctest.Wait()
		select {
		case at := <-closed:
			t.Fatalf("closed after %v, before the 10m idle timeout", at.Sub(start))
		default:
		}
		at := <-closed // the bubble's clock runs on until the server closes it
		if d := at.Sub(start); d < 10*time.Minute || d > 10*time.Minute+30*time.Second {
			t.Errorf("idle connection closed after %v, want 10m plus at most one 30s keepalive tick", d)
		}
		synctest.Wait()
		if a := g.auditText(t); !strings.Contains(a, `"event":"disconnect"`) || !strings.Contains(a, `"reason":"idle timeout"`) {
			t.Errorf("no idle-timeout record in the audit log:\n%s", a)
		}
	})
}

// While the revocation list cannot be read, logins go on until the stale
// limit, are refused after it, and are admitted again once the list reads.
func TestRevocationStaleLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rev := &fakeRevocations{snap: cookies.Snapshot{Version: 1}}
		g := startClockGateway(t, "", rev, time.Minute)
		c, err := g.login()
		if err != nil {
			t.Fatalf("login with a fresh list: %v", err)
		}
		c.Close()

		rev.setErr(errors.New("vault unreachable"))
		time.Sleep(50 * time.Second) // the last good read was 50 s ago
		if c, err = g.login(); err != nil {
			t.Fatalf("login 50 s into a Vault outage, inside the 1m stale limit: %v", err)
		}
		c.Close()

		time.Sleep(20 * time.Second) // 70 s: past the limit
		if c, err := g.login(); err == nil {
			c.Close()
			t.Fatal("login accepted with the revocation list unconfirmed past its stale limit")
		}
		synctest.Wait() // the refused connection's record is written as it ends
		if a := g.auditText(t); !strings.Contains(a, "stale limit") {
			t.Errorf("the refused login's record does not name the stale limit:\n%s", a)
		}

		rev.setErr(nil)
		time.Sleep(11 * time.Second) // the next poll reads the list again
		c, err = g.login()
		if err != nil {
			t.Fatalf("login once the list reads again: %v", err)
		}
		c.Close()
	})
}
