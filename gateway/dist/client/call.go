package client

import (
	"context"
	"fmt"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

// RemoteError is an exception raised by the called function on production,
// or the death of the process running it before it produced a result.
type RemoteError struct {
	// Class is throw, exit or error, as erpc reports it. A process that died
	// without a result is Class exit with Reason {signal, R}, as in erpc.
	Class  term.Atom
	Reason term.Term
	Stack  term.Term // the trimmed stack for Class error; nil otherwise
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("client: remote %s: %s", e.Class, term.Format(e.Reason, 256))
}

// SpawnError reports that production refused to spawn the call (Reason is
// the error atom of its SPAWN_REPLY, such as badopt or system_limit).
type SpawnError struct {
	Reason term.Atom
}

func (e *SpawnError) Error() string { return "client: remote spawn failed: " + string(e.Reason) }

// erpc's entry point on the remote node.
var executeCall = struct {
	module, function term.Atom
	arity            int
}{"erpc", "execute_call", 4}

// Call runs module:function(args...) on production as erpc:call does: it
// spawns erpc:execute_call/4 there with a monitor and waits for the
// monitor's exit reason, which carries the result. A raised exception
// returns *RemoteError, a refused spawn *SpawnError. When ctx ends first,
// Call returns ctx's error; the remote process is not killed and runs to
// completion, as with erpc.
func (c *Conn) Call(ctx context.Context, module, function term.Atom, args []term.Term) (term.Term, error) {
	if c.ctx.Err() != nil {
		return nil, c.closedErr()
	}
	cl := &call{self: c.newPid(), resRef: c.newRef(), events: make(chan dist.Message, 2)}
	reqRef := c.newRef()
	key := refKey(reqRef)
	c.mu.Lock()
	c.pending[key] = cl
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, key)
		c.mu.Unlock()
	}()

	req := dist.Message{
		Control: &dist.SpawnRequest{
			ReqID: reqRef, From: cl.self, GroupLeader: cl.self,
			Module: executeCall.module, Function: executeCall.function, Arity: executeCall.arity,
			Opts: term.MakeList(term.Atom("monitor")),
		},
		Payload: term.MakeList(cl.resRef, module, function, term.MakeList(args...)),
	}
	if err := c.send(req); err != nil {
		return nil, err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("client: %s:%s/%d on %s: %w", module, function, len(args), c.cfg.Target, ctx.Err())
		case <-c.ctx.Done():
			return nil, c.closedErr()
		case m := <-cl.events:
			switch ctl := m.Control.(type) {
			case *dist.SpawnReply:
				if a, ok := ctl.Result.(term.Atom); ok {
					return nil, &SpawnError{Reason: a}
				}
			case *dist.SpawnReplyTT:
				if a, ok := ctl.Result.(term.Atom); ok {
					return nil, &SpawnError{Reason: a}
				}
			case *dist.PayloadMonitorPExit:
				return cl.result(m.Payload)
			case *dist.MonitorPExit:
				return cl.result(ctl.Reason)
			}
		}
	}
}

// result interprets the exit reason of erpc:execute_call/4 (erpc.erl
// execute_call/4 and result/4).
func (cl *call) result(reason term.Term) (term.Term, error) {
	t, ok := reason.(term.Tuple)
	if !ok || len(t) < 3 || !term.Equal(t[0], cl.resRef) {
		return nil, &RemoteError{Class: "exit", Reason: term.Tuple{term.Atom("signal"), reason}}
	}
	class, _ := t[1].(term.Atom)
	switch {
	case class == "return" && len(t) == 3:
		return t[2], nil
	case (class == "throw" || class == "exit") && len(t) == 3:
		return nil, &RemoteError{Class: class, Reason: t[2]}
	case class == "error" && len(t) == 4:
		return nil, &RemoteError{Class: class, Reason: t[2], Stack: t[3]}
	case class == "error" && len(t) == 3: // {ResRef, error, {erpc, Reason}}
		return nil, &RemoteError{Class: class, Reason: t[2]}
	}
	return nil, &RemoteError{Class: "exit", Reason: term.Tuple{term.Atom("signal"), reason}}
}
