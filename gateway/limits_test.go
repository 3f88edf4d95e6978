package gateway

import (
	"beamgate/audit"
	"beamgate/internal/beamtest"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// goClient dials the gateway with x/crypto as user with the key at path.
func (e *gatewayEnv) goClient(user, keyPath string) (*gossh.Client, error) {
	b, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		return nil, err
	}
	return gossh.Dial("tcp", e.addr, &gossh.ClientConfig{
		User:            user,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	})
}

func TestNoneAndUnprovenKeys(t *testing.T) {
	e := startGateway(t, envOptions{})
	// No auth methods at all: "none" must be refused.
	_, err := gossh.Dial("tcp", e.addr, &gossh.ClientConfig{User: "alice", HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err == nil {
		t.Fatal(`"none" authentication accepted`)
	}
	// A client that offers alice's public key but signs with another key
	// (it cannot prove alice's key) is refused.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := gossh.NewSignerFromKey(other)
	alicePub, _, _, _, _ := gossh.ParseAuthorizedKey([]byte(beamtest.PublicKey(t, e.aliceK)))
	liar := &lyingSigner{Signer: otherSigner, pub: alicePub}
	_, err = gossh.Dial("tcp", e.addr, &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(liar)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err == nil {
		t.Fatal("a key the client cannot prove was accepted")
	}
}

// lyingSigner presents pub but signs with another key.
type lyingSigner struct {
	gossh.Signer
	pub gossh.PublicKey
}

func (l *lyingSigner) PublicKey() gossh.PublicKey { return l.pub }

func TestHandshakeTimeout(t *testing.T) {
	e := startGateway(t, envOptions{extraYAML: "limits:\n  handshake_timeout: 1s\n"})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Send a version line and then nothing: the gateway must hang up.
	c.Write([]byte("SSH-2.0-silent\r\n"))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("connection still open long after the handshake timeout")
			}
			break
		}
	}
	e.waitAudit("handshake timeout")
}

// TestUnauthenticatedLimit: connections still in their handshake are
// bounded (limits.max_unauthenticated): one over the bound is closed
// before the gateway says a word, and audited; once one of them ends, a
// login works again.
func TestUnauthenticatedLimit(t *testing.T) {
	e := startGateway(t, envOptions{extraYAML: "limits:\n  max_unauthenticated: 2\n"})
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("SSH-2.0-slow\r\n"))
		// The gateway's own version line: this connection was accepted.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 64)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	third, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := third.Read(make([]byte, 64)); err == nil || n > 0 {
		t.Fatalf("a third connection in its handshake was served (%d bytes, %v)", n, err)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a third connection in its handshake was left open")
	}
	e.waitAudit("too many connections still logging in (limits.max_unauthenticated is 2)")
	if _, err := e.goClient("alice", e.aliceK); err == nil {
		t.Fatal("a login was served past limits.max_unauthenticated")
	}
	held[0].Close()
	// The slot frees once the gateway sees the close: retry until then.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := e.goClient("alice", e.aliceK)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login after a slot freed: %v", err)
		}
	}
}

func TestChannelAndConnectionLimits(t *testing.T) {
	e := startGateway(t, envOptions{extraYAML: "limits:\n  max_channels_per_connection: 5\n  max_connections_per_user: 2\n"})
	c1, err := e.goClient("alice", e.aliceK)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	// Epmd-face channels stay open waiting for a request.
	for i := 0; i < 5; i++ {
		ch, err := c1.Dial("tcp", "prod-01:4369")
		if err != nil {
			t.Fatalf("channel %d: %v", i, err)
		}
		defer ch.Close()
	}
	_, err = c1.Dial("tcp", "prod-01:4369")
	var oce *gossh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != gossh.ResourceShortage {
		t.Errorf("sixth channel: err = %v, want ResourceShortage", err)
	}
	// Refused destinations are Prohibited.
	_, err = c1.Dial("tcp", "example.com:80")
	if !errors.As(err, &oce) || oce.Reason != gossh.Prohibited {
		t.Errorf("open proxy attempt: err = %v, want Prohibited", err)
	}

	c2, err := e.goClient("alice", e.aliceK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.goClient("alice", e.aliceK); err == nil {
		t.Error("third connection for alice accepted")
	}
	// bob is not limited by alice's connections.
	c3, err := e.goClient("bob", e.bobK)
	if err != nil {
		t.Errorf("bob refused: %v", err)
	} else {
		c3.Close()
	}
	c2.Close()
	// After a connection closes, its slot is released (bounded retry:
	// the server notices the close asynchronously).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c4, err := e.goClient("alice", e.aliceK)
		if err == nil {
			c4.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not released: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.waitAudit("too many connections for user", "too many channels on this connection")
}

func TestSessionsPerTarget(t *testing.T) {
	block := make(chan struct{})
	e := startGateway(t, envOptions{extraYAML: "limits:\n  max_sessions_per_target: 1\n"})
	e.relay.block = block
	defer close(block)
	c, err := e.goClient("alice", e.aliceK)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Dial("tcp", "prod-01:4370")
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	_, err = c.Dial("tcp", "prod-01:4370")
	var oce *gossh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != gossh.ResourceShortage {
		t.Errorf("second session to the target: err = %v, want ResourceShortage", err)
	}
	// The relay is called right after the channel is accepted.
	for i := 0; ; i++ {
		e.relay.mu.Lock()
		n := len(e.relay.calls)
		e.relay.mu.Unlock()
		if n == 1 {
			break
		}
		if n > 1 || i > 200 {
			t.Fatalf("relay calls = %d", n)
		}
		time.Sleep(25 * time.Millisecond)
	}
	e.relay.mu.Lock()
	defer e.relay.mu.Unlock()
	eng, tgt := e.relay.calls[0], e.relay.tgts[0]
	if eng.User != "alice" || eng.Profile == nil || eng.Mode != "enforce" || len(eng.Cookies) != 2 ||
		eng.Cookies[0] != e.gw.Cookie("alice", time.Now()) || eng.Session == "" || !strings.HasPrefix(eng.KeyID, "SHA256:") {
		t.Errorf("engineer = %+v", eng)
	}
	if tgt.Name != "prismatic@prod-01" || tgt.Cluster != "prismatic" || tgt.GatewayPort != 4370 || tgt.Dial != "127.0.0.2:1" {
		t.Errorf("target = %+v", tgt)
	}
}

// TestSessionRequestsRefused: X11, agent forwarding and subsystems are
// refused on a session channel and audited; a PTY and env are harmless.
func TestSessionRequestsRefused(t *testing.T) {
	e := startGateway(t, envOptions{})
	c, err := e.goClient("alice", e.aliceK)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	go gossh.DiscardRequests(reqs)
	x11 := gossh.Marshal(struct {
		Single        bool
		Proto, Cookie string
		Screen        uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00", 0})
	for _, r := range []struct {
		typ     string
		payload []byte
	}{{"x11-req", x11}, {"auth-agent-req@openssh.com", nil}, {"subsystem", gossh.Marshal(struct{ Name string }{"sftp"})}} {
		ok, err := ch.SendRequest(r.typ, true, r.payload)
		if err != nil || ok {
			t.Errorf("%s: ok=%v err=%v, want refused", r.typ, ok, err)
		}
	}
	ok, err := ch.SendRequest("pty-req", true, gossh.Marshal(struct {
		Term             string
		Cols, Rows, W, H uint32
		Modes            string
	}{"xterm", 80, 24, 0, 0, ""}))
	if err != nil || !ok {
		t.Errorf("pty-req refused: %v", err)
	}
	ok, err = ch.SendRequest("exec", true, gossh.Marshal(struct{ Command string }{"cookie"}))
	if err != nil || !ok {
		t.Fatalf("exec cookie: %v %v", ok, err)
	}
	out := make([]byte, 64)
	n, _ := ch.Read(out)
	if got := string(out[:n]); got != e.gw.Cookie("alice", time.Now())+"\r\n" {
		t.Errorf("cookie over a PTY = %q", got)
	}
	e.waitAudit(`"op":"x11-req"`, `"op":"auth-agent-req@openssh.com"`, `"subsystem":"sftp"`)
}

// switchableSink fails every append while broken is set, as a full audit
// disk does.
type switchableSink struct {
	audit.Sink
	broken atomic.Bool
}

func (s *switchableSink) Append(ctx context.Context, r *audit.Record) error {
	if s.broken.Load() {
		return fmt.Errorf("%w: %w: write audit.jsonl: no space left on device", audit.ErrLogFailed, audit.ErrUnavailable)
	}
	return s.Sink.Append(ctx, r)
}

// TestAuditOutageRefusalIsExplained: while the audit log cannot be
// written, OpenSSH logins are refused with a banner saying so (not a bare
// "Permission denied (publickey)"), and nothing is handed out; once the
// log writes again, logins work.
func TestAuditOutageRefusalIsExplained(t *testing.T) {
	var sw *switchableSink
	e := startGateway(t, envOptions{sink: func(l *audit.Log) audit.Sink { sw = &switchableSink{Sink: l}; return sw }})
	sw.broken.Store(true)
	// As an engineer runs it: OpenSSH's default LogLevel (INFO) shows
	// banners; the harness's ERROR would hide them.
	args := e.sshArgs("alice", e.aliceK)
	for i, a := range args {
		if a == "LogLevel=ERROR" {
			args[i] = "LogLevel=INFO"
		}
	}
	var out, errb bytes.Buffer
	cmd := exec.Command("ssh", append(args, "cookie")...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := sshResult{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	if err == nil || r.code != 255 || !strings.Contains(r.stderr, "audit log cannot be written") || strings.Contains(r.stdout, e.gw.Cookie("alice", time.Now())) {
		t.Errorf("login during an audit outage: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	sw.broken.Store(false)
	if r := e.ssh("alice", e.aliceK, nil, "cookie"); r.code != 0 || strings.TrimSpace(r.stdout) != e.gw.Cookie("alice", time.Now()) {
		t.Errorf("login after the outage: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}
