// Package client owns beamgate's hidden-node client: a Go process that
// connects to a production BEAM node as a hidden Erlang node (epmd lookup,
// handshake without PUBLISHED, 4-byte framing, ticks) and makes rpc calls
// the way erpc does, so the gateway can ask production questions of its
// own (node health, cookie rotation checks) without running an Erlang VM.
//
// It can also spawn a process with a pid of its own as parent (Spawn) and
// receive what that process sends to the pid in a bounded Mailbox, as
// observer's collectors report to the observer node.
//
// The client never executes anything it is sent: besides the replies to its
// own calls and the messages to its mailboxes it answers only io_requests
// (with {error, enotsup}) and drops every other message.
package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/handshake"
	"beamgate/gateway/dist/term"
	"beamgate/gateway/epmd"
)

// DefaultEpmdPort is where epmd listens unless told otherwise.
const DefaultEpmdPort = epmd.DefaultPort

// ErrClosed is returned by calls on a closed or broken connection; the
// cause is wrapped alongside it.
var ErrClosed = errors.New("client: connection closed")

// Config configures Dial.
type Config struct {
	Node     string // our node name, e.g. beamgate_rot_x@bastion
	Target   string // the production node, prod@host
	EpmdAddr string // host:port of production's epmd; default Target's host:4369
	DistAddr string // host:port of production's distribution listener; skips epmd
	Cookie   string // production's cookie; never logged
	Creation uint32 // our creation; random if 0

	// NetTicktime is production's net_ticktime (0 = OTP's default 60 s).
	// We tick every NetTicktime/4 when idle and give up after NetTicktime
	// without input.
	NetTicktime time.Duration
	MaxFrame    int                              // frame size bound (0 = dist.DefaultMaxFrame)
	Limits      *term.Limits                     // term limits for replies (nil = defaults)
	Logf        func(format string, args ...any) // optional
}

// Conn is a hidden-node connection to one production node. Its methods are
// safe for concurrent use.
type Conn struct {
	cfg   Config
	nc    net.Conn
	fw    *dist.FrameWriter
	flags handshake.Flags

	ids     atomic.Uint64 // pid and reference counter
	refSalt uint32

	cancel context.CancelCauseFunc
	ctx    context.Context // done when the connection is closed or broken
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending map[string]*call      // by request reference
	boxes   map[term.Pid]*Mailbox // Spawn's mailboxes by our pid
	boxRefs map[string]*Mailbox   // and by spawn request reference
}

// call is one Call in flight, keyed by its SPAWN_REQUEST reference (which
// is also the monitor reference of the result).
type call struct {
	self   term.Pid
	resRef term.Ref
	events chan dist.Message // SPAWN_REPLY, then the monitor exit
}

// Dial connects to cfg.Target as the hidden node cfg.Node.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if err := handshake.CheckNodeName(cfg.Node); err != nil {
		return nil, fmt.Errorf("client: our node name: %w", err)
	}
	if err := handshake.CheckNodeName(cfg.Target); err != nil {
		return nil, fmt.Errorf("client: target: %w", err)
	}
	addr, err := distAddr(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: dialing %s at %s: %w", cfg.Target, addr, err)
	}
	return DialConn(ctx, nc, cfg)
}

// distAddr finds production's distribution listener.
func distAddr(ctx context.Context, cfg Config) (string, error) {
	if cfg.DistAddr != "" {
		return cfg.DistAddr, nil
	}
	alive, host, _ := strings.Cut(cfg.Target, "@")
	epmdAddr := cfg.EpmdAddr
	if epmdAddr == "" {
		epmdAddr = net.JoinHostPort(host, strconv.Itoa(DefaultEpmdPort))
	} else if h, _, err := net.SplitHostPort(epmdAddr); err == nil {
		// The node's distribution port is on the host its epmd answers
		// on; the host in its name may not resolve from here (the
		// gateway's configuration says where to reach it).
		host = h
	}
	port, err := epmd.LookupPort(ctx, epmdAddr, alive)
	if err != nil {
		return "", fmt.Errorf("client: looking up %s at epmd %s: %w", cfg.Target, epmdAddr, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// Flags returns the capability flags negotiated in the handshake.
func (c *Conn) Flags() handshake.Flags { return c.flags }

// Done is closed when the connection is closed or broken; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.ctx.Done() }

// Err returns nil while the connection is up, and why it ended afterwards.
func (c *Conn) Err() error {
	if c.ctx.Err() == nil {
		return nil
	}
	return context.Cause(c.ctx)
}

// Close closes the connection, fails the calls in flight with ErrClosed and
// waits for the connection's goroutines.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// fail ends the connection with cause.
func (c *Conn) fail(cause error) {
	c.cancel(cause)
	c.nc.Close()
}

func (c *Conn) tickLoop() {
	defer c.wg.Done()
	err := c.fw.RunTicker(c.ctx, dist.TickInterval(c.cfg.NetTicktime))
	if c.ctx.Err() == nil {
		c.fail(fmt.Errorf("%w: ticking: %w", ErrClosed, err))
	}
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	fr := dist.NewFrameReader(c.nc, c.cfg.MaxFrame)
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.cfg.NetTicktime))
		frame, err := fr.Next()
		if err != nil {
			if c.ctx.Err() == nil {
				c.fail(fmt.Errorf("%w: reading from %s: %w", ErrClosed, c.cfg.Target, err))
			}
			return
		}
		if len(frame) == 0 {
			continue // a tick: liveness only
		}
		m, err := dist.DecodeFrame(frame, c.cfg.Limits)
		if err != nil {
			c.cfg.Logf("client: dropping undecodable frame from %s: %v", c.cfg.Target, err)
			continue
		}
		c.dispatch(m, len(frame))
	}
}

// dispatch routes one message from production: results to their calls,
// messages and exits to Spawn's mailboxes, io_requests to ioReply,
// everything else to the floor.
func (c *Conn) dispatch(m dist.Message, size int) {
	if c.dispatchMailbox(m, size) {
		return
	}
	var ref term.Term
	switch ctl := m.Control.(type) {
	case *dist.SpawnReply:
		ref = ctl.ReqID
	case *dist.SpawnReplyTT:
		ref = ctl.ReqID
	case *dist.PayloadMonitorPExit:
		ref = ctl.Ref
	case *dist.MonitorPExit:
		ref = ctl.Ref
	case *dist.SendSender:
		c.ioReply(ctl.To, m.Payload)
		return
	case *dist.Send:
		c.ioReply(ctl.To, m.Payload)
		return
	default:
		return
	}
	r, ok := ref.(term.Ref)
	if !ok {
		return
	}
	c.mu.Lock()
	cl := c.pending[refKey(r)]
	c.mu.Unlock()
	if cl == nil {
		return // a call that gave up, or not ours
	}
	select {
	case cl.events <- m:
	default: // more than the two events a call expects: drop
	}
}

// ioReply answers {io_request, From, ReplyAs, Request} sent to one of our
// pids with {io_reply, ReplyAs, {error, enotsup}}.
func (c *Conn) ioReply(to term.Pid, msg term.Term) {
	if to.Node != term.Atom(c.cfg.Node) || !term.IsTagged(msg, "io_request", 4) {
		return
	}
	req := msg.(term.Tuple)
	from, ok := req[1].(term.Pid)
	if !ok {
		return
	}
	reply := term.Tuple{term.Atom("io_reply"), req[2], term.Tuple{term.Atom("error"), term.Atom("enotsup")}}
	if err := c.send(dist.Message{Control: &dist.SendSender{From: to, To: from}, Payload: reply}); err != nil {
		c.cfg.Logf("client: io_reply to %s: %v", c.cfg.Target, err)
	}
}

func (c *Conn) send(m dist.Message) error {
	frame, err := dist.AppendMessageFrame(nil, m)
	if err != nil {
		return err
	}
	if err := c.fw.WriteFrame(frame); err != nil {
		c.fail(fmt.Errorf("%w: writing to %s: %w", ErrClosed, c.cfg.Target, err))
		return c.closedErr()
	}
	return nil
}

func (c *Conn) closedErr() error {
	cause := context.Cause(c.ctx)
	if errors.Is(cause, ErrClosed) {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}

// newID returns a fresh id for a pid or reference.
func (c *Conn) newID() uint64 { return c.ids.Add(1) }

// newPid returns a fresh pid of our node. Its number stays within the 15
// and serial within the 13 bits OTP uses for pids.
func (c *Conn) newPid() term.Pid {
	n := c.newID()
	return term.Pid{Node: term.Atom(c.cfg.Node), ID: uint32(n & 0x7fff), Serial: uint32(n>>15) & 0x1fff, Creation: c.cfg.Creation}
}

// newRef returns a fresh reference of our node (3 words, the first within
// the 18 bits OTP uses).
func (c *Conn) newRef() term.Ref {
	n := c.newID()
	return term.Ref{Node: term.Atom(c.cfg.Node), Creation: c.cfg.Creation,
		ID: []uint32{uint32(n & 0x3ffff), uint32(n >> 18), c.refSalt}}
}

func refKey(r term.Ref) string {
	var b []byte
	b = append(b, r.Node...)
	b = binary.BigEndian.AppendUint32(b, r.Creation)
	for _, w := range r.ID {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	return string(b)
}

func randomUint32() uint32 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("client: crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return binary.BigEndian.Uint32(b[:])
}
