package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

// Mailbox bounds used when SpawnOptions leaves them zero.
const (
	DefaultMailboxMessages = 64
	DefaultMailboxBytes    = 64 << 20
)

// ErrMailboxOverflow closes a mailbox whose owner did not keep up: the
// reader never waits for a consumer, it drops the mailbox instead.
var ErrMailboxOverflow = errors.New("client: mailbox overflow")

// ErrMailboxClosed is returned by Receive after Close.
var ErrMailboxClosed = errors.New("client: mailbox closed")

// ExitError is the end of a spawned process: its link EXIT or monitor
// DOWN reason. Receive returns it once the messages sent before it are
// consumed.
type ExitError struct {
	Pid    term.Pid
	Reason term.Term
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("client: process %s exited: %s", term.Format(e.Pid, 64), term.Format(e.Reason, 256))
}

// Normal reports whether the process exited with reason normal.
func (e *ExitError) Normal() bool { return e.Reason == term.Atom("normal") }

// SpawnOptions says how Spawn watches the spawned process and bounds what
// it may send.
type SpawnOptions struct {
	Link        bool // spawn with link (EXIT ends the mailbox)
	Monitor     bool // spawn with monitor (DOWN ends the mailbox)
	MaxMessages int  // queued messages; 0 = DefaultMailboxMessages
	MaxBytes    int  // queued encoded bytes; 0 = DefaultMailboxBytes
}

// Opts returns the SPAWN_REQUEST option list for o.
func (o SpawnOptions) Opts() term.Term {
	var opts []term.Term
	if o.Link {
		opts = append(opts, term.Atom("link"))
	}
	if o.Monitor {
		opts = append(opts, term.Atom("monitor"))
	}
	return term.MakeList(opts...)
}

// Mailbox receives what production sends to one of the client's pids
// (Self), and the exit of the process Spawn started (Pid).
type Mailbox struct {
	Self term.Pid // our pid: the spawned process's parent and group leader
	Pid  term.Pid // the spawned process

	c      *Conn
	reqKey string
	reply  chan dist.Message // the SPAWN_REPLY
	msgs   chan term.Term
	done   chan struct{} // closed on exit, overflow or Close

	mu       sync.Mutex
	spawned  term.Pid // Pid, as the reader goroutine knows it
	bytes    int      // queued bytes
	maxBytes int
	end      error // why done closed
	sizes    chan int
}

// NewSelf returns a fresh pid of the client's node, for a process on
// production to send to (a "collector pid").
func (c *Conn) NewSelf() term.Pid { return c.newPid() }

// Spawn starts module:function(args...) on production with a SPAWN_REQUEST
// from self (a pid from NewSelf) and returns the mailbox receiving what is
// sent to self. A refused spawn returns *SpawnError.
func (c *Conn) Spawn(ctx context.Context, self term.Pid, module, function term.Atom, args []term.Term, opts SpawnOptions) (*Mailbox, error) {
	if c.ctx.Err() != nil {
		return nil, c.closedErr()
	}
	if self.Node != term.Atom(c.cfg.Node) {
		return nil, fmt.Errorf("client: spawn from %s: not a pid of %s", term.Format(self, 64), c.cfg.Node)
	}
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = DefaultMailboxMessages
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMailboxBytes
	}
	reqRef := c.newRef()
	mb := &Mailbox{Self: self, c: c, reqKey: refKey(reqRef), reply: make(chan dist.Message, 1),
		msgs: make(chan term.Term, opts.MaxMessages), sizes: make(chan int, opts.MaxMessages),
		done: make(chan struct{}), maxBytes: opts.MaxBytes}
	c.mu.Lock()
	if c.boxes == nil {
		c.boxes = map[term.Pid]*Mailbox{}
		c.boxRefs = map[string]*Mailbox{}
	}
	if c.boxes[self] != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("client: %s already has a mailbox", term.Format(self, 64))
	}
	c.boxes[self] = mb
	c.boxRefs[mb.reqKey] = mb
	c.mu.Unlock()

	req := dist.Message{
		Control: &dist.SpawnRequest{ReqID: reqRef, From: self, GroupLeader: self,
			Module: module, Function: function, Arity: len(args), Opts: opts.Opts()},
		Payload: term.MakeList(args...),
	}
	if err := c.send(req); err != nil {
		mb.Close()
		return nil, err
	}
	select {
	case <-ctx.Done():
		mb.Close()
		return nil, fmt.Errorf("client: spawning %s:%s/%d on %s: %w", module, function, len(args), c.cfg.Target, ctx.Err())
	case <-c.ctx.Done():
		mb.Close()
		return nil, c.closedErr()
	case m := <-mb.reply:
		var res term.Term
		switch ctl := m.Control.(type) {
		case *dist.SpawnReply:
			res = ctl.Result
		case *dist.SpawnReplyTT:
			res = ctl.Result
		}
		pid, ok := res.(term.Pid)
		if !ok {
			mb.Close()
			a, _ := res.(term.Atom)
			return nil, &SpawnError{Reason: a}
		}
		mb.Pid = pid
		return mb, nil
	}
}

// Receive returns the next message sent to Self. After the last one it
// returns *ExitError when the process ended, ErrMailboxOverflow when the
// owner fell behind, ErrMailboxClosed after Close, or ctx's error.
func (mb *Mailbox) Receive(ctx context.Context) (term.Term, error) {
	// Queued messages come before the end, as they arrived before it.
	select {
	case t := <-mb.msgs:
		mb.consumed()
		return t, nil
	default:
	}
	select {
	case t := <-mb.msgs:
		mb.consumed()
		return t, nil
	case <-mb.done:
		select {
		case t := <-mb.msgs:
			mb.consumed()
			return t, nil
		default:
		}
		mb.mu.Lock()
		defer mb.mu.Unlock()
		return nil, mb.end
	case <-mb.c.ctx.Done():
		return nil, mb.c.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (mb *Mailbox) consumed() {
	select {
	case n := <-mb.sizes:
		mb.mu.Lock()
		mb.bytes -= n
		mb.mu.Unlock()
	default:
	}
}

// Done is closed when nothing more will arrive.
func (mb *Mailbox) Done() <-chan struct{} { return mb.done }

// Close stops delivery to the mailbox. A process still running is left to
// finish; what it sends afterwards is dropped.
func (mb *Mailbox) Close() error {
	mb.finish(ErrMailboxClosed)
	return nil
}

// finish unregisters the mailbox and ends it with why, once.
func (mb *Mailbox) finish(why error) {
	c := mb.c
	c.mu.Lock()
	if c.boxes[mb.Self] == mb {
		delete(c.boxes, mb.Self)
	}
	if c.boxRefs[mb.reqKey] == mb {
		delete(c.boxRefs, mb.reqKey)
	}
	c.mu.Unlock()
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.end == nil {
		mb.end = why
		close(mb.done)
	}
}

// deliver queues a message without ever waiting: a full mailbox is
// dropped with ErrMailboxOverflow. It runs on the reader goroutine.
func (mb *Mailbox) deliver(t term.Term, size int) {
	mb.mu.Lock()
	if mb.end != nil {
		mb.mu.Unlock()
		return
	}
	if mb.bytes+size > mb.maxBytes || len(mb.msgs) == cap(mb.msgs) {
		mb.mu.Unlock()
		mb.finish(ErrMailboxOverflow)
		return
	}
	mb.bytes += size
	mb.sizes <- size // never blocks: same capacity as msgs, and we hold mu
	mb.msgs <- t
	mb.mu.Unlock()
}

// dispatchMailbox routes a message for a mailbox; it reports whether m
// belonged to one. It runs on the reader goroutine and never waits for a
// mailbox's owner.
func (c *Conn) dispatchMailbox(m dist.Message, size int) bool {
	var (
		byRef term.Term // SPAWN_REPLY and monitor DOWN: the request reference
		to    term.Pid  // sends and link exits: our pid
		from  *term.Pid // link exits: the process that exited
		exit  term.Term // the exit reason, if m ends the process
	)
	switch ctl := m.Control.(type) {
	case *dist.SpawnReply:
		byRef = ctl.ReqID
	case *dist.SpawnReplyTT:
		byRef = ctl.ReqID
	case *dist.MonitorPExit:
		byRef, exit = ctl.Ref, ctl.Reason
	case *dist.PayloadMonitorPExit:
		byRef, exit = ctl.Ref, m.Payload
	case *dist.Exit:
		to, from, exit = ctl.To, &ctl.From, ctl.Reason
	case *dist.PayloadExit:
		to, from, exit = ctl.To, &ctl.From, m.Payload
	case *dist.Send:
		to = ctl.To
	case *dist.SendSender:
		to = ctl.To
	default:
		return false
	}
	c.mu.Lock()
	var mb *Mailbox
	if byRef != nil {
		if r, ok := byRef.(term.Ref); ok {
			mb = c.boxRefs[refKey(r)]
		}
	} else {
		mb = c.boxes[to]
	}
	c.mu.Unlock()
	if mb == nil {
		return false
	}
	switch {
	case byRef != nil && exit == nil: // the SPAWN_REPLY
		var res term.Term
		if r, ok := m.Control.(*dist.SpawnReply); ok {
			res = r.Result
		} else {
			res = m.Control.(*dist.SpawnReplyTT).Result
		}
		if pid, ok := res.(term.Pid); ok {
			mb.mu.Lock()
			mb.spawned = pid
			mb.mu.Unlock()
		}
		select {
		case mb.reply <- m:
		default:
		}
	case exit != nil:
		mb.mu.Lock()
		spawned := mb.spawned
		mb.mu.Unlock()
		if from != nil && *from != spawned {
			return false // not the process we spawned
		}
		mb.finish(&ExitError{Pid: spawned, Reason: exit})
	case term.IsTagged(m.Payload, "io_request", 4):
		return false // ioReply answers it
	default:
		mb.deliver(m.Payload, size)
	}
	return true
}
