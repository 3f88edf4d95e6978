package handshake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// secretCookie is distinctive so tests can check no error carries it.
const secretCookie = "S3CRET-cookie-text"

func initiatorConfig() InitiatorConfig {
	return InitiatorConfig{
		Name: "eng@host", Creation: 11, Flags: ClientFlags,
		Cookie: fuzzCookie, PeerName: "prod@host", challenge: fixedChallenge(1),
	}
}

func acceptorConfig() AcceptorConfig {
	return AcceptorConfig{
		Name: "gw@host", Creation: 22, Flags: ClientFlags | Published,
		Cookie:    func(string) (string, bool) { return fuzzCookie, true },
		challenge: fixedChallenge(1),
	}
}

func TestInitiateAcceptOverPipe(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	icfg := initiatorConfig()
	icfg.PeerName = "gw@host"
	icfg.challenge = nil // real random challenges on both sides
	acfg := acceptorConfig()
	acfg.challenge = nil

	type result struct {
		res *Result
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		res, err := Accept(context.Background(), b, acfg)
		accepted <- result{res, err}
	}()
	ires, err := Initiate(context.Background(), a, icfg)
	if err != nil {
		t.Fatalf("Initiate: %v", err)
	}
	ar := <-accepted
	if ar.err != nil {
		t.Fatalf("Accept: %v", ar.err)
	}
	if ires.PeerName != "gw@host" || ires.PeerCreation != 22 || ires.PeerFlags != ClientFlags|Published {
		t.Errorf("initiator saw %+v", ires)
	}
	if ar.res.PeerName != "eng@host" || ar.res.PeerCreation != 11 || ar.res.PeerFlags != ClientFlags {
		t.Errorf("acceptor saw %+v", ar.res)
	}
	if ires.Flags != ar.res.Flags || ires.Flags != ClientFlags.Expand() {
		t.Errorf("negotiated flags differ: initiator %v, acceptor %v", ires.Flags, ar.res.Flags)
	}
}

func TestInitiateStatuses(t *testing.T) {
	tests := []struct {
		name      string
		status    Status
		onAlive   func() bool
		wantReply string // status reply the initiator must write, if any
		wantErr   func(error) bool
	}{
		{name: "ok", status: Status{Code: StatusOk}},
		{name: "ok_simultaneous", status: Status{Code: StatusOkSimultaneous}},
		{name: "nok", status: Status{Code: StatusNok}, wantErr: refusedWith(StatusNok)},
		{name: "not_allowed", status: Status{Code: StatusNotAllowed}, wantErr: refusedWith(StatusNotAllowed)},
		{name: "alive, no OnAlive", status: Status{Code: StatusAlive}, wantReply: "\x00\x06sfalse", wantErr: refusedWith(StatusAlive)},
		{name: "alive, OnAlive false", status: Status{Code: StatusAlive}, onAlive: func() bool { return false }, wantReply: "\x00\x06sfalse", wantErr: refusedWith(StatusAlive)},
		{name: "alive, OnAlive true", status: Status{Code: StatusAlive}, onAlive: func() bool { return true }, wantReply: "\x00\x05strue"},
		{name: "named", status: Status{Code: StatusNamed, Name: "x@host", Creation: 1}, wantErr: isFormatError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := newMemConn(prodScript(1, tt.status))
			cfg := initiatorConfig()
			cfg.OnAlive = tt.onAlive
			res, err := Initiate(context.Background(), conn, cfg)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Initiate: %v", err)
			case tt.wantErr != nil && !tt.wantErr(err):
				t.Fatalf("Initiate: err = %v (res %+v)", err, res)
			}
			if tt.wantReply != "" && !strings.Contains(conn.w.String(), tt.wantReply) {
				t.Errorf("wrote %q, want it to contain %q", conn.w.String(), tt.wantReply)
			}
		})
	}
	t.Run("unknown status", func(t *testing.T) {
		_, err := Initiate(context.Background(), newMemConn(packets([]byte("sbogus"))), initiatorConfig())
		if !isFormatError(err) {
			t.Errorf("err = %v, want *FormatError", err)
		}
	})
}

func refusedWith(code StatusCode) func(error) bool {
	return func(err error) bool {
		var r *RefusedError
		return errors.As(err, &r) && r.Status == code
	}
}

func isFormatError(err error) bool {
	var fe *FormatError
	return errors.As(err, &fe)
}

func TestInitiateChecksChallenge(t *testing.T) {
	challenge := func(c Challenge) []byte {
		return packets([]byte("sok"), c.Encode(nil), (&ChallengeAck{Digest: Digest(1, fuzzCookie)}).Encode(nil))
	}
	good := Challenge{Flags: Mandatory25Digest, Challenge: 5, Name: "prod@host"}

	t.Run("digest bit suffices", func(t *testing.T) {
		if _, err := Initiate(context.Background(), newMemConn(challenge(good)), initiatorConfig()); err != nil {
			t.Fatalf("Initiate: %v", err)
		}
	})
	t.Run("missing mandatory flags", func(t *testing.T) {
		c := good
		c.Flags = Mandatory25 &^ (BigCreation | UTF8Atoms)
		_, err := Initiate(context.Background(), newMemConn(challenge(c)), initiatorConfig())
		var mf *MissingFlagsError
		if !errors.As(err, &mf) || mf.Missing != BigCreation|UTF8Atoms {
			t.Fatalf("err = %v, want MissingFlagsError{BIG_CREATION|UTF8_ATOMS}", err)
		}
		if !strings.Contains(err.Error(), "UTF8_ATOMS|BIG_CREATION") {
			t.Errorf("error %q does not name the flags", err)
		}
	})
	t.Run("name mismatch", func(t *testing.T) {
		c := good
		c.Name = "impostor@host"
		_, err := Initiate(context.Background(), newMemConn(challenge(c)), initiatorConfig())
		if !errors.Is(err, ErrNameMismatch) || !strings.Contains(err.Error(), "impostor@host") {
			t.Fatalf("err = %v, want ErrNameMismatch naming the impostor", err)
		}
	})
	t.Run("bad ack digest", func(t *testing.T) {
		cfg := initiatorConfig()
		cfg.Cookie = secretCookie
		_, err := Initiate(context.Background(), newMemConn(challenge(good)), cfg)
		if !errors.Is(err, ErrBadDigest) || strings.Contains(err.Error(), secretCookie) {
			t.Fatalf("err = %v, want ErrBadDigest without the cookie", err)
		}
	})
	t.Run("peer closes instead of ack", func(t *testing.T) {
		script := packets([]byte("sok"), good.Encode(nil))
		_, err := Initiate(context.Background(), newMemConn(script), initiatorConfig())
		if !errors.Is(err, ErrCookieRejected) {
			t.Fatalf("err = %v, want ErrCookieRejected", err)
		}
	})
	t.Run("reply carries our digest of their challenge", func(t *testing.T) {
		conn := newMemConn(challenge(good))
		if _, err := Initiate(context.Background(), conn, initiatorConfig()); err != nil {
			t.Fatal(err)
		}
		want := packets((&ChallengeReply{Challenge: 1, Digest: Digest(5, fuzzCookie)}).Encode(nil))
		if !bytes.HasSuffix(conn.w.Bytes(), want) {
			t.Errorf("wrote %q, want it to end with %q", conn.w.Bytes(), want)
		}
	})
}

func TestAcceptRefusals(t *testing.T) {
	nameMsg := func(flags Flags, name string) []byte { return (&Name{Flags: flags, Name: name}).Encode(nil) }
	tests := []struct {
		name       string
		script     []byte
		cookie     func(string) (string, bool)
		wantErr    func(error) bool
		wantStatus string // what Accept must have written
	}{
		{
			name:       "old handshake",
			script:     packets([]byte("n\x00\x05\x00\x07\x7f\xfd" + "eng@host")),
			wantErr:    func(err error) bool { return errors.Is(err, ErrOldHandshake) },
			wantStatus: "\x00\x0csnot_allowed",
		},
		{
			name:       "dynamic name",
			script:     packets(nameMsg(ClientFlags|NameMe, "host")),
			wantErr:    func(err error) bool { return errors.Is(err, ErrNameMe) },
			wantStatus: "\x00\x0csnot_allowed",
		},
		{
			name:   "missing mandatory flags",
			script: packets(nameMsg(Published|Spawn, "eng@host")),
			wantErr: func(err error) bool {
				var mf *MissingFlagsError
				return errors.As(err, &mf) && mf.Missing == Mandatory25
			},
			wantStatus: "\x00\x0csnot_allowed",
		},
		{
			name:       "no cookie",
			script:     engineerScript(1),
			cookie:     func(string) (string, bool) { return "", false },
			wantErr:    func(err error) bool { return errors.Is(err, ErrNoCookie) },
			wantStatus: "\x00\x0csnot_allowed",
		},
		{
			name:    "bad digest",
			script:  engineerScript(1),
			cookie:  func(string) (string, bool) { return secretCookie, true },
			wantErr: func(err error) bool { return errors.Is(err, ErrBadDigest) },
		},
		{
			name:    "garbage",
			script:  []byte("\x00\x03abc"),
			wantErr: isFormatError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := acceptorConfig()
			if tt.cookie != nil {
				cfg.Cookie = tt.cookie
			}
			conn := newMemConn(tt.script)
			_, err := Accept(context.Background(), conn, cfg)
			if !tt.wantErr(err) {
				t.Fatalf("Accept: err = %v", err)
			}
			if strings.Contains(err.Error(), secretCookie) {
				t.Errorf("error %q contains the cookie", err)
			}
			if tt.wantStatus != "" && conn.w.String() != tt.wantStatus {
				t.Errorf("wrote %q, want %q", conn.w.String(), tt.wantStatus)
			}
			if bytes.Contains(conn.w.Bytes(), []byte{0, 17, tagAck}) {
				t.Errorf("wrote an ack after a failed handshake: %q", conn.w.Bytes())
			}
		})
	}
}

func TestAcceptWritesStatusChallengeAck(t *testing.T) {
	conn := newMemConn(engineerScript(1))
	if _, err := Accept(context.Background(), conn, acceptorConfig()); err != nil {
		t.Fatal(err)
	}
	want := packets(
		[]byte("sok"),
		(&Challenge{Flags: ClientFlags | Published, Challenge: 1, Creation: 22, Name: "gw@host"}).Encode(nil),
		(&ChallengeAck{Digest: Digest(99, fuzzCookie)}).Encode(nil),
	)
	if !bytes.Equal(conn.w.Bytes(), want) {
		t.Errorf("wrote\n%q\nwant\n%q", conn.w.Bytes(), want)
	}
}

func TestSilentPeer(t *testing.T) {
	// The peer never says a word: the handshake must end by itself, both
	// on ctx's deadline and on cancellation.
	run := func(t *testing.T, ctx context.Context, wantErr error) {
		for _, role := range []string{"initiator", "acceptor"} {
			a, b := net.Pipe()
			go func() { _, _ = b.Read(make([]byte, MaxPacket)) }() // swallow send_name
			var err error
			if role == "initiator" {
				_, err = Initiate(ctx, a, initiatorConfig())
			} else {
				_, err = Accept(ctx, a, acceptorConfig())
			}
			a.Close()
			b.Close()
			if !errors.Is(err, wantErr) {
				t.Errorf("%s: err = %v, want %v", role, err, wantErr)
			}
		}
	}
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		run(t, ctx, context.DeadlineExceeded)
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		run(t, ctx, context.Canceled)
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		run(t, ctx, context.Canceled)
	})
}

// deadlineConn records SetDeadline calls.
type deadlineConn struct {
	*memConn
	deadlines []time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.deadlines = append(c.deadlines, t)
	return nil
}

func TestDeadlines(t *testing.T) {
	conn := &deadlineConn{memConn: newMemConn(prodScript(1, Status{Code: StatusOk}))}
	if _, err := Initiate(context.Background(), conn, initiatorConfig()); err != nil {
		t.Fatal(err)
	}
	if n := len(conn.deadlines); n != 2 || conn.deadlines[0].IsZero() || !conn.deadlines[1].IsZero() {
		t.Errorf("SetDeadline calls %v, want a default deadline then a clear", conn.deadlines)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []func(*InitiatorConfig){
		func(c *InitiatorConfig) { c.Name = "nohost" },
		func(c *InitiatorConfig) { c.PeerName = "" },
		func(c *InitiatorConfig) { c.Flags |= NameMe },
		func(c *InitiatorConfig) { c.Cookie = "" },
	}
	for i, mutate := range bad {
		cfg := initiatorConfig()
		mutate(&cfg)
		conn := newMemConn(nil)
		if _, err := Initiate(context.Background(), conn, cfg); err == nil || conn.w.Len() != 0 {
			t.Errorf("bad initiator config %d: err = %v, wrote %q", i, err, conn.w.Bytes())
		}
	}
	acfg := acceptorConfig()
	acfg.Cookie = nil
	if _, err := Accept(context.Background(), newMemConn(nil), acfg); err == nil {
		t.Error("Accept with a nil Cookie func succeeded")
	}
}

// TestRealSeedsComplete replays the handshakes captured from real OTP
// nodes (testdata/fuzz/*/real-*) and checks each completes: the corpus
// drives the fuzzers down the whole success path.
func TestRealSeedsComplete(t *testing.T) {
	acc, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzAcceptor", "real-*"))
	ini, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzInitiator", "real-*"))
	files := append(acc, ini...)
	if len(files) == 0 {
		t.Skip("no captured seeds")
	}
	for _, file := range files {
		challenge, cookie, data := readSeed(t, file)
		var err error
		switch filepath.Base(filepath.Dir(file)) {
		case "FuzzAcceptor":
			cfg := acceptorConfig()
			cfg.Name = "fake@127.0.0.3"
			cfg.Cookie = func(string) (string, bool) { return cookie, true }
			cfg.challenge = fixedChallenge(challenge)
			_, err = Accept(context.Background(), newMemConn(data), cfg)
		case "FuzzInitiator":
			cfg := initiatorConfig()
			cfg.PeerName, cfg.Cookie = "prod@127.0.0.2", cookie
			cfg.OnAlive = func() bool { return true }
			cfg.challenge = fixedChallenge(challenge)
			_, err = Initiate(context.Background(), newMemConn(data), cfg)
		}
		if err != nil {
			t.Errorf("%s: %v", file, err)
		}
		// Each captured packet body is a FuzzMessages seed too.
		r := bytes.NewReader(data)
		for i := 0; r.Len() > 0; i++ {
			body, err := ReadPacket(r, nil)
			if err != nil {
				t.Fatalf("%s: packet %d: %v", file, i, err)
			}
			writeMessageSeed(t, fmt.Sprintf("%s-%d", filepath.Base(file), i), body)
		}
	}
}

// readSeed parses a corpus file written by writeSeed.
func readSeed(t *testing.T, file string) (uint32, string, []byte) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	arg := func(line, prefix string) string {
		if !strings.HasPrefix(line, prefix+"(") || !strings.HasSuffix(line, ")") {
			t.Fatalf("%s: bad line %q", file, line)
		}
		return line[len(prefix)+1 : len(line)-1]
	}
	if len(lines) != 4 {
		t.Fatalf("%s: %d lines", file, len(lines))
	}
	ch, err1 := strconv.ParseUint(arg(lines[1], "uint32"), 10, 32)
	cookie, err2 := strconv.Unquote(arg(lines[2], "string"))
	data, err3 := strconv.Unquote(arg(lines[3], "[]byte"))
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return uint32(ch), cookie, []byte(data)
}
