package epmd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// DefaultRequestTimeout bounds the wait for a client's request and for
// writing the answer when Face.RequestTimeout is zero.
const DefaultRequestTimeout = 10 * time.Second

// Outcomes passed to Face.Observe.
const (
	OutcomeAnswered = "answered"  // answered from the face's own data
	OutcomeNotFound = "not_found" // PORT_PLEASE2 for a node the engineer may not reach
	OutcomeRefused  = "refused"   // DUMP, KILL, STOP: administrative requests
	OutcomeError    = "error"     // the answer could not be built
)

// What the face reports about the nodes it hands out in PORT2_RESP: the
// gateway speaks distribution versions 5..6 over TCP for a normal node.
const (
	faceNodeType       = 77 // 'M'
	faceProtocol       = 0  // TCP/IPv4
	faceHighestVersion = 6
	faceLowestVersion  = 5
)

// Face is the gateway's epmd face: it answers the epmd requests of an
// engineer's node itself and never forwards them. Each connection is one
// SSH direct-tcpip channel to (host, 4369), already accepted, handed to
// Serve.
//
// ALIVE2_REQ gets a local registration with a random creation and the
// connection is held open, as a real epmd would. PORT_PLEASE2_REQ and
// NAMES_REQ are answered from Lookup and Names, which reflect what the
// engineer may reach. DUMP_REQ, KILL_REQ and STOP_REQ are refused.
//
// The fields must not change while Serve runs; Serve may be called from
// many goroutines at once.
type Face struct {
	// Lookup returns the gateway distribution port for an alive name (the
	// part before '@') the engineer may reach on this host. Nil means none.
	Lookup func(alive string) (port uint16, ok bool)
	// Names lists the nodes the engineer may reach on this host. Nil means none.
	Names func() []NameEntry
	// Register, if set, decides an ALIVE2_REQ: false answers with a
	// non-zero result, which erl reports as its name being in use. The
	// release it returns is called once the registration ends. Nil accepts
	// every registration.
	Register func(req *Alive2Req) (release func(), ok bool)
	// Observe, if set, is told about each request and how it was answered
	// (for the audit log), before the answer is written. Outcome is one of
	// the Outcome* constants.
	Observe func(req Request, outcome string)
	// Rand is the creation source; nil means crypto/rand.
	Rand io.Reader
	// EPMDPort is the epmd port reported in NAMES answers; zero means
	// DefaultPort. OTP's net_adm:names/0 rejects an answer naming another
	// port than its own ERL_EPMD_PORT, so this must match the port the
	// engineer's node uses locally (4369 unless ERL_EPMD_PORT is set).
	EPMDPort uint16
	// RequestTimeout bounds reading the request and writing the answer;
	// zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// Serve answers the one request on conn and closes conn. For ALIVE2_REQ it
// then holds conn open until the peer closes it (nil error), the peer sends
// anything more (ErrUnexpectedData) or ctx ends (ctx's error). A request
// that cannot be read or decoded yields the ReadRequest error, wrapped.
func (f *Face) Serve(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	timeout := f.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return f.fail(ctx, "set deadline", err)
	}
	req, err := ReadRequest(conn)
	if err != nil {
		return f.fail(ctx, "read request", err)
	}
	var release func()
	if a, ok := req.(*Alive2Req); ok && f.Register != nil {
		var accepted bool
		if release, accepted = f.Register(a); !accepted {
			answer, _, err := encodeAnswer(alive2Refusal(a), OutcomeRefused)
			f.observe(req, OutcomeRefused)
			if err == nil {
				_, err = conn.Write(answer)
			}
			if err != nil {
				return f.fail(ctx, "refuse registration", err)
			}
			return nil
		}
		if release != nil {
			defer release()
		}
	}
	answer, outcome, err := f.answer(req)
	f.observe(req, outcome)
	if err != nil {
		return fmt.Errorf("epmd face: answer %v: %w", req, err)
	}
	if len(answer) > 0 {
		if _, err := conn.Write(answer); err != nil {
			return f.fail(ctx, fmt.Sprintf("write answer to %v", req), err)
		}
	}
	if _, ok := req.(*Alive2Req); ok {
		return f.holdRegistration(ctx, conn)
	}
	return nil
}

// answer decides the reply to req and how to report it.
func (f *Face) answer(req Request) (answer []byte, outcome string, err error) {
	switch req := req.(type) {
	case *Alive2Req:
		var resp Response
		if req.HighestVersion >= 6 {
			c, err := randomNonZero(f.Rand, 4)
			if err != nil {
				return nil, OutcomeError, err
			}
			resp = &Alive2XResp{Result: 0, Creation: c}
		} else {
			c, err := randomNonZero(f.Rand, 2)
			if err != nil {
				return nil, OutcomeError, err
			}
			resp = &Alive2Resp{Result: 0, Creation: uint16(c)}
		}
		return encodeAnswer(resp, OutcomeAnswered)
	case *PortPlease2Req:
		var (
			port uint16
			ok   bool
		)
		if f.Lookup != nil {
			port, ok = f.Lookup(req.Name)
		}
		if !ok {
			return encodeAnswer(&Port2Resp{Result: 1}, OutcomeNotFound)
		}
		return encodeAnswer(&Port2Resp{
			PortNo:         port,
			NodeType:       faceNodeType,
			Protocol:       faceProtocol,
			HighestVersion: faceHighestVersion,
			LowestVersion:  faceLowestVersion,
			Name:           req.Name,
		}, OutcomeAnswered)
	case *NamesReq:
		var entries []NameEntry
		if f.Names != nil {
			entries = f.Names()
		}
		port := uint32(f.EPMDPort)
		if port == 0 {
			port = DefaultPort
		}
		return encodeAnswer(&NamesResp{EPMDPort: port, Entries: entries}, OutcomeAnswered)
	case *StopReq:
		// A real epmd says NOEXIST for unknown nodes; as far as the
		// engineer is concerned, none of the gateway's nodes exist to stop.
		return []byte("NOEXIST"), OutcomeRefused, nil
	case *DumpReq, *KillReq:
		return nil, OutcomeRefused, nil
	}
	return nil, OutcomeError, fmt.Errorf("%w: %v", ErrUnknownRequest, req)
}

// alive2Refusal is the answer to a registration the face refuses, in the
// version the node asked for.
func alive2Refusal(req *Alive2Req) Response {
	if req.HighestVersion >= 6 {
		return &Alive2XResp{Result: 1}
	}
	return &Alive2Resp{Result: 1}
}

func encodeAnswer(resp Response, outcome string) ([]byte, string, error) {
	b, err := resp.Encode(nil)
	if err != nil {
		return nil, OutcomeError, err
	}
	return b, outcome, nil
}

// holdRegistration keeps an answered ALIVE2 connection open: closing it is
// how a node unregisters, and erl treats an early close as losing epmd.
func (f *Face) holdRegistration(ctx context.Context, conn net.Conn) error {
	// An error here (say, the peer already closed a pipe) shows up again
	// from Read, which tells a close apart from a failure.
	_ = conn.SetDeadline(time.Time{})
	var b [1]byte
	n, err := conn.Read(b[:])
	switch {
	case n > 0:
		return ErrUnexpectedData
	case errors.Is(err, io.EOF):
		return nil
	default:
		return f.fail(ctx, "hold registration", err)
	}
}

// fail wraps err, preferring ctx's error when ctx ending caused it.
func (f *Face) fail(ctx context.Context, op string, err error) error {
	if ctxErr := context.Cause(ctx); ctxErr != nil {
		return ctxErr
	}
	return fmt.Errorf("epmd face: %s: %w", op, err)
}

func (f *Face) observe(req Request, outcome string) {
	if f.Observe != nil {
		f.Observe(req, outcome)
	}
}

// errNoCreation means the random source kept yielding zero.
var errNoCreation = errors.New("epmd: random source yields no non-zero creation")

// randomNonZero reads a non-zero big-endian number of n (2 or 4) bytes
// from r (crypto/rand when nil), retrying a bounded number of times.
func randomNonZero(r io.Reader, n int) (uint32, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [4]byte
	for range 8 {
		if _, err := io.ReadFull(r, b[:n]); err != nil {
			return 0, fmt.Errorf("epmd: creation: %w", err)
		}
		var v uint32
		for _, c := range b[:n] {
			v = v<<8 | uint32(c)
		}
		if v != 0 {
			return v, nil
		}
	}
	return 0, errNoCreation
}
