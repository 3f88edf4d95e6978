package handshake

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// memConn is an in-memory net.Conn: reads come from a fixed script, then
// EOF; writes are collected. Deadlines are accepted and ignored (reads
// never block).
type memConn struct {
	r *bytes.Reader
	w bytes.Buffer
}

func newMemConn(script []byte) *memConn { return &memConn{r: bytes.NewReader(script)} }

func (c *memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func fixedChallenge(ch uint32) func() (uint32, error) {
	return func() (uint32, error) { return ch, nil }
}

// packets frames bodies with the handshake's 2-byte length.
func packets(bodies ...[]byte) []byte {
	var b bytes.Buffer
	for _, body := range bodies {
		if err := WritePacket(&b, body); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

// writeSeed stores a captured handshake as a fuzz seed when
// BEAMGATE_WRITE_CORPUS=1 (run the real-BEAM tests with it to refresh).
func writeSeed(t *testing.T, target, name string, challenge uint32, cookie string, data []byte) {
	t.Helper()
	writeCorpusFile(t, target, name, fmt.Sprintf("uint32(%d)", challenge), fmt.Sprintf("string(%q)", cookie), fmt.Sprintf("[]byte(%q)", data))
}

// writeMessageSeed stores one packet body as a FuzzMessages seed, like
// writeSeed.
func writeMessageSeed(t *testing.T, name string, body []byte) {
	t.Helper()
	writeCorpusFile(t, "FuzzMessages", name, fmt.Sprintf("[]byte(%q)", body))
}

// writeCorpusFile writes a corpus file of formatted values when
// BEAMGATE_WRITE_CORPUS=1.
func writeCorpusFile(t *testing.T, target, name string, values ...string) {
	t.Helper()
	if os.Getenv("BEAMGATE_WRITE_CORPUS") != "1" {
		return
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n" + strings.Join(values, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

const fuzzCookie = "fuzzcookie"

// engineerScript is a well-formed initiator side for an acceptor using
// challenge ch and fuzzCookie.
func engineerScript(ch uint32) []byte {
	return packets(
		(&Name{Flags: ClientFlags, Creation: 7, Name: "eng@host"}).Encode(nil),
		(&ChallengeReply{Challenge: 99, Digest: Digest(ch, fuzzCookie)}).Encode(nil),
	)
}

// prodScript is a well-formed acceptor side for an initiator using
// challenge ch and fuzzCookie.
func prodScript(ch uint32, status ...Status) []byte {
	var bodies [][]byte
	for _, s := range status {
		bodies = append(bodies, s.Encode(nil))
	}
	bodies = append(bodies,
		(&Challenge{Flags: ClientFlags | Published, Challenge: 42, Creation: 9, Name: "prod@host"}).Encode(nil),
		(&ChallengeAck{Digest: Digest(ch, fuzzCookie)}).Encode(nil),
	)
	return packets(bodies...)
}

func fuzzContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	t.Cleanup(cancel)
	return ctx
}

func FuzzAcceptor(f *testing.F) {
	f.Add(uint32(1), fuzzCookie, engineerScript(1))
	f.Add(uint32(1), fuzzCookie, engineerScript(2))
	f.Add(uint32(1), fuzzCookie, packets([]byte("n\x00\x05\x00\x00\x00\x00eng@host")))
	f.Add(uint32(1), fuzzCookie, packets((&Name{Flags: ClientFlags | NameMe, Name: "host"}).Encode(nil)))
	f.Add(uint32(1), fuzzCookie, packets((&Name{Flags: Published, Name: "old@host"}).Encode(nil)))
	f.Add(uint32(1), fuzzCookie, []byte{0x08, 0x00, 'N'})
	f.Add(uint32(1), fuzzCookie, []byte{0x00, 0x00})
	f.Fuzz(func(t *testing.T, challenge uint32, cookie string, data []byte) {
		conn := newMemConn(data)
		res, err := Accept(fuzzContext(t), conn, AcceptorConfig{
			Name:      "gw@host",
			Flags:     ClientFlags,
			Cookie:    func(string) (string, bool) { return cookie, cookie != "" },
			challenge: fixedChallenge(challenge),
		})
		if (res == nil) == (err == nil) {
			t.Fatalf("Accept = %v, %v: want exactly one", res, err)
		}
	})
}

func FuzzInitiator(f *testing.F) {
	f.Add(uint32(1), fuzzCookie, prodScript(1, Status{Code: StatusOk}))
	f.Add(uint32(1), fuzzCookie, prodScript(1, Status{Code: StatusAlive}))
	f.Add(uint32(1), fuzzCookie, prodScript(2, Status{Code: StatusOkSimultaneous}))
	f.Add(uint32(1), fuzzCookie, prodScript(1, Status{Code: StatusNamed, Name: "x@host", Creation: 3}))
	f.Add(uint32(1), fuzzCookie, packets([]byte("snot_allowed")))
	f.Add(uint32(1), fuzzCookie, packets([]byte("snok")))
	f.Add(uint32(1), fuzzCookie, []byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, challenge uint32, cookie string, data []byte) {
		if cookie == "" {
			cookie = fuzzCookie
		}
		conn := newMemConn(data)
		res, err := Initiate(fuzzContext(t), conn, InitiatorConfig{
			Name:      "eng@host",
			Flags:     ClientFlags,
			Cookie:    cookie,
			PeerName:  "prod@host",
			OnAlive:   func() bool { return true },
			challenge: fixedChallenge(challenge),
		})
		if (res == nil) == (err == nil) {
			t.Fatalf("Initiate = %v, %v: want exactly one", res, err)
		}
		if res != nil && res.PeerName != "prod@host" {
			t.Fatalf("PeerName = %q", res.PeerName)
		}
	})
}

func FuzzMessages(f *testing.F) {
	for _, m := range allMessages() {
		f.Add(m.Encode(nil))
	}
	f.Add([]byte("n\x00\x05\x00\x00\x00\x00eng@host"))
	f.Add([]byte("snamed:\x00\x06x@host\x00\x00\x00\x01"))
	f.Add([]byte("N\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range newMessages() {
			if err := m.Decode(data); err != nil {
				continue
			}
			// What decodes must re-encode to something that decodes the same.
			again := m.Encode(nil)
			m2 := newMessageLike(m)
			if err := m2.Decode(again); err != nil {
				t.Fatalf("%T: re-decoding %q: %v", m, again, err)
			}
			if fmt.Sprint(m) != fmt.Sprint(m2) {
				t.Fatalf("%T: round trip %v != %v", m, m, m2)
			}
		}
	})
}

// newMessages returns one zero value of each message type.
func newMessages() []Message {
	return []Message{&Name{}, &Status{}, &StatusReply{}, &Challenge{}, &ChallengeReply{}, &ChallengeAck{}}
}

func newMessageLike(m Message) Message {
	for _, n := range newMessages() {
		if fmt.Sprintf("%T", n) == fmt.Sprintf("%T", m) {
			return n
		}
	}
	panic(fmt.Sprintf("unknown message %T", m))
}

// allMessages returns a valid value of each message kind.
func allMessages() []Message {
	return []Message{
		&Name{Flags: ClientFlags, Creation: 0xdeadbeef, Name: "eng@host"},
		&Status{Code: StatusOk},
		&Status{Code: StatusOkSimultaneous},
		&Status{Code: StatusNok},
		&Status{Code: StatusNotAllowed},
		&Status{Code: StatusAlive},
		&Status{Code: StatusNamed, Name: "ABC123@host", Creation: 0x01020304},
		&StatusReply{Continue: true},
		&StatusReply{Continue: false},
		&Challenge{Flags: ClientFlags | Published, Challenge: 3774219178, Creation: 5, Name: "prod@prodhost"},
		&ChallengeReply{Challenge: 1, Digest: Digest(1, "c")},
		&ChallengeAck{Digest: Digest(2, "c")},
	}
}
