package views

import (
	"context"
	"errors"
	"fmt"
	"time"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/client"
	"beamgate/gateway/dist/term"
)

// Spawner is a Caller that can also spawn a collector on production that
// reports to a pid of the caller's own, as observer does. *client.Conn
// and *PolicedCaller are Spawners; views fall back to one call per
// process with a Caller that is not, or when the policy refuses the
// collector.
type Spawner interface {
	// NewSelf returns a fresh pid of the caller's node.
	NewSelf() term.Pid
	// Spawn starts module:function(args...) from self and returns the
	// mailbox of what production sends to self.
	Spawn(ctx context.Context, self term.Pid, module, function term.Atom, args []term.Term, opts client.SpawnOptions) (*client.Mailbox, error)
}

// ErrNoSpawn is PolicedCaller.Spawn's error when the caller it wraps
// cannot spawn.
var ErrNoSpawn = errors.New("views: the caller cannot spawn")

// NewSelf implements Spawner.
func (p *PolicedCaller) NewSelf() term.Pid {
	if s, ok := p.next.(Spawner); ok {
		return s.NewSelf()
	}
	return p.self
}

// Spawn implements Spawner: it builds the SPAWN_REQUEST the client will
// send, runs it through the policy session, writes the audit record and
// only then spawns. Refusals return *DeniedError and are audited too.
func (p *PolicedCaller) Spawn(ctx context.Context, self term.Pid, module, function term.Atom, args []term.Term, opts client.SpawnOptions) (*client.Mailbox, error) {
	next, ok := p.next.(Spawner)
	if !ok {
		return nil, ErrNoSpawn
	}
	reqID := p.newRef()
	m := dist.Message{
		Control: &dist.SpawnRequest{ReqID: reqID, From: self, GroupLeader: self,
			Module: module, Function: function, Arity: len(args), Opts: opts.Opts()},
		Payload: term.MakeList(args...),
	}
	d := p.sess.Evaluate(m)
	if d.Verdict.Forwarded() {
		// As in evaluate: the client consumes the real reply.
		p.sess.Observe(&dist.SpawnReply{ReqID: reqID, To: self, Result: term.Atom("ok")}, nil)
	}
	if p.cfg.Audit != nil {
		rec := p.record(ctx, d)
		rec.Detail["spawn"] = "1"
		if err := p.cfg.Audit.Append(ctx, rec); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrAudit, err) // audit before forward
		}
	}
	if !d.Verdict.Forwarded() {
		return nil, &DeniedError{MFA: d.What, Rule: d.Rule, Reason: d.Reason}
	}
	return next.Spawn(ctx, self, module, function, args, opts)
}

// procInfo is one process as observer_backend's collector reports it.
type procInfo struct {
	pid        term.Pid
	memory     int64
	reductions int64
	msgq       int64
	name       string // registered name, or the (translated) initial call
	current    string
}

// collectorBounds bound what one collection keeps and reads.
const (
	collectorMessages = 32       // queued procs_info messages
	collectorBytes    = 64 << 20 // queued bytes
	maxCollected      = 10 * MaxSampled
)

// errNoCollector says the collector could not be used and the view should
// take the per-process path.
var errNoCollector = errors.New("views: collector unavailable")

// collectProcs spawns observer_backend:procs_info(Self) linked to a pid of
// ours and reads every process it reports; total is how many it reported
// (only the first MaxSampled are kept). It returns an error wrapping
// errNoCollector when c cannot spawn, the policy refuses the collector or
// production cannot run it.
func collectProcs(ctx context.Context, c Caller) (procs []procInfo, total int, err error) {
	s, ok := c.(Spawner)
	if !ok {
		return nil, 0, errNoCollector
	}
	self := s.NewSelf()
	mb, err := s.Spawn(ctx, self, "observer_backend", "procs_info", []term.Term{self},
		client.SpawnOptions{Link: true, MaxMessages: collectorMessages, MaxBytes: collectorBytes})
	var denied *DeniedError
	var spawnErr *client.SpawnError
	switch {
	case errors.As(err, &denied), errors.As(err, &spawnErr), errors.Is(err, ErrNoSpawn):
		return nil, 0, fmt.Errorf("%w: %w", errNoCollector, err)
	case err != nil:
		return nil, 0, err
	}
	defer mb.Close()
	for {
		msg, err := mb.Receive(ctx)
		var exit *client.ExitError
		if errors.As(err, &exit) {
			if !exit.Normal() {
				// Such as undef: runtime_tools is not on production.
				return nil, 0, fmt.Errorf("%w: %w", errNoCollector, err)
			}
			return procs, total, nil
		}
		if err != nil {
			return nil, 0, err
		}
		t, ok := msg.(term.Tuple)
		if !ok || len(t) != 3 || t[0] != term.Atom("procs_info") || t[1] != mb.Pid {
			continue // not the collector's report
		}
		elems, ok := term.ListElems(t[2])
		if !ok {
			return nil, 0, badReply("observer_backend:procs_info/1", msg)
		}
		for _, e := range elems {
			p, ok := parseProcInfo(e)
			if !ok {
				continue
			}
			total++
			if total > maxCollected {
				return nil, 0, fmt.Errorf("views: the collector reported more than %d processes", maxCollected)
			}
			if len(procs) < MaxSampled {
				procs = append(procs, p)
			}
		}
	}
}

// parseProcInfo reads one collector entry: an etop_proc_info record
// {etop_proc_info, Pid, Mem, Reds, Name, Runtime, CurrentFunction, MsgQ}
// (OTP 25) or a proplist with the process_info keys.
func parseProcInfo(e term.Term) (procInfo, bool) {
	if t, ok := e.(term.Tuple); ok {
		if len(t) != 8 || t[0] != term.Atom("etop_proc_info") {
			return procInfo{}, false
		}
		pid, ok := t[1].(term.Pid)
		if !ok {
			return procInfo{}, false
		}
		return procInfo{pid: pid, memory: intOr0(t[2]), reductions: intOr0(t[3]), msgq: intOr0(t[7]),
			name: procName(t[4]), current: mfaText(t[6])}, true
	}
	items := props(e)
	pid, ok := items["pid"].(term.Pid)
	if !ok {
		return procInfo{}, false
	}
	name := nameOf(items["registered_name"])
	if name == "" {
		name = mfaText(items["initial_call"])
	}
	return procInfo{pid: pid, memory: intOr0(items["memory"]), reductions: intOr0(items["reductions"]),
		msgq: intOr0(items["message_queue_len"]), name: name, current: mfaText(items["current_function"])}, true
}

// procName prints the collector's name field: a registered name or an
// initial call already translated through proc_lib.
func procName(t term.Term) string {
	if n := nameOf(t); n != "" {
		return n
	}
	return mfaText(t)
}

// topCollected is Top for the keys the collector reports (memory,
// reductions, message_queue_len): one collector run per sample instead of
// one call per process.
func topCollected(ctx context.Context, c Caller, by string, n int, window time.Duration) (*TopResult, error) {
	first, total, err := collectProcs(ctx, c)
	if err != nil {
		return nil, err
	}
	res := &TopResult{By: by, Processes: total, Sampled: len(first)}
	value := func(p procInfo) int64 {
		switch by {
		case "reductions":
			return p.reductions
		case "message_queue_len":
			return p.msgq
		}
		return p.memory
	}
	latest := first
	rs := make([]ranked, 0, len(first))
	if by == "reductions" {
		res.WindowMs = window.Milliseconds()
		before := make(map[term.Pid]int64, len(first))
		for _, p := range first {
			before[p.pid] = p.reductions
		}
		if err := sleep(ctx, window); err != nil {
			return nil, err
		}
		if latest, _, err = collectProcs(ctx, c); err != nil {
			return nil, err
		}
		for _, p := range latest {
			if b, ok := before[p.pid]; ok { // born during the window: not ranked
				rs = append(rs, ranked{p.pid, p.reductions - b})
			}
		}
	} else {
		for _, p := range first {
			rs = append(rs, ranked{p.pid, value(p)})
		}
	}
	byPid := make(map[term.Pid]*procInfo, len(latest))
	for i := range latest {
		byPid[latest[i].pid] = &latest[i]
	}
	top := topN(rs, n)
	res.Rows = make([]ProcRow, 0, len(top))
	for _, r := range top {
		p := byPid[r.pid]
		res.Rows = append(res.Rows, ProcRow{Pid: pidText(r.pid), Name: p.name, CurrentFunction: p.current, Value: r.value})
	}
	return res, nil
}
