package views

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"beamgate/audit"
	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
	"beamgate/policy"
)

// Caller makes one rpc call on the production node a view inspects, as
// erpc:call does. *client.Conn is a Caller; the gateway wraps it in a
// PolicedCaller.
type Caller interface {
	Call(ctx context.Context, module, function term.Atom, args []term.Term) (term.Term, error)
}

// DeniedError is the policy's refusal of a call a view wanted to make.
// The call did not leave the gateway.
type DeniedError struct {
	MFA    string // module:function/arity
	Rule   string
	Reason string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("views: %s refused by policy rule %s: %s", e.MFA, e.Rule, e.Reason)
}

// ErrAudit wraps a failure to write the audit record of a call; the call
// was not made.
var ErrAudit = errors.New("views: audit log")

// PolicedConfig describes who a PolicedCaller calls for and where.
type PolicedConfig struct {
	Profile *policy.Profile // the engineer's role profile
	Mode    policy.Mode     // "" = enforce
	Known   *policy.AtomSet // the target's shared atom set; nil = private

	// Engineer is the name of the node the calls come from (the gateway's
	// hidden-node client) and EngineerCreation its creation (any non-zero
	// value; it only has to be consistent within the session).
	Engineer         string
	EngineerCreation uint32
	Target           string // the production node's name

	Audit   audit.Sink // required: an allowed call is made only once its record is on disk
	User    string
	Cluster string
	Session string // audit session id, optional
}

// PolicedCaller checks every call against the engineer's policy, as the
// relay checks an erpc call the engineer's own node sends, and writes an
// audit record before making it. Refused calls return *DeniedError and
// are audited too. It is safe for concurrent use.
type PolicedCaller struct {
	next Caller
	cfg  PolicedConfig
	sess *policy.Session
	self term.Pid
	ids  atomic.Uint64
}

// NewPolicedCaller wraps next (normally a *client.Conn).
func NewPolicedCaller(next Caller, cfg PolicedConfig) *PolicedCaller {
	if cfg.EngineerCreation == 0 {
		cfg.EngineerCreation = 1
	}
	p := &PolicedCaller{next: next, cfg: cfg}
	p.sess = policy.NewSession(policy.SessionConfig{
		Profile: cfg.Profile, Mode: cfg.Mode,
		Engineer: term.Atom(cfg.Engineer), EngineerCreation: cfg.EngineerCreation,
		Production: term.Atom(cfg.Target), Known: cfg.Known,
	})
	p.self = term.Pid{Node: term.Atom(cfg.Engineer), ID: 1, Creation: cfg.EngineerCreation}
	return p
}

// Call implements Caller.
func (p *PolicedCaller) Call(ctx context.Context, module, function term.Atom, args []term.Term) (term.Term, error) {
	res := p.callBatch(ctx, module, function, [][]term.Term{args}, 1)
	return res[0].val, res[0].err
}

// result is the outcome of one call of a batch.
type result struct {
	val term.Term
	err error
}

// batchCaller is implemented by callers that police and audit a batch of
// calls of one function with one audit record per decision.
type batchCaller interface {
	callBatch(ctx context.Context, module, function term.Atom, argv [][]term.Term, concurrency int) []result
}

// callMany calls module:function with each argument list, at most
// concurrency at a time, and returns the results in order.
func callMany(ctx context.Context, c Caller, module, function term.Atom, argv [][]term.Term, concurrency int) []result {
	if b, ok := c.(batchCaller); ok {
		return b.callBatch(ctx, module, function, argv, concurrency)
	}
	out := make([]result, len(argv))
	runParallel(ctx, len(argv), concurrency, func(i int) {
		out[i].val, out[i].err = c.Call(ctx, module, function, argv[i])
	})
	return out
}

// runParallel runs fn(0..n-1) on at most concurrency goroutines; it stops
// handing out work once ctx ends.
func runParallel(ctx context.Context, n, concurrency int, fn func(i int)) {
	if concurrency < 1 {
		concurrency = 1
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

type decisionKey struct {
	verdict policy.Verdict
	rule    string
}

// callBatch evaluates every call, writes one audit record per distinct
// decision (with the number of calls it covers), and only then makes the
// allowed calls.
func (p *PolicedCaller) callBatch(ctx context.Context, module, function term.Atom, argv [][]term.Term, concurrency int) []result {
	out := make([]result, len(argv))
	groups := map[decisionKey]*audit.Record{}
	var order []decisionKey
	allowed := make([]int, 0, len(argv))
	for i, args := range argv {
		d := p.evaluate(module, function, args)
		k := decisionKey{d.Verdict, d.Rule}
		rec := groups[k]
		if rec == nil {
			rec = p.record(ctx, d)
			groups[k] = rec
			order = append(order, k)
		}
		rec.Detail["calls"] = strconv.Itoa(atoiOr(rec.Detail["calls"]) + 1)
		if d.Verdict.Forwarded() {
			allowed = append(allowed, i)
		} else {
			out[i].err = &DeniedError{MFA: d.What, Rule: d.Rule, Reason: d.Reason}
		}
	}
	for _, k := range order {
		rec := groups[k]
		if rec.Detail["calls"] != "1" {
			rec.Args = "" // the arguments of one call of many
		}
		stake := audit.After // a refusal: the caller gets its DeniedError either way
		if k.verdict.Forwarded() {
			stake = audit.Gate
		}
		w := audit.Writer{Sink: p.cfg.Audit, Timeout: -1}
		if err := w.Record(ctx, stake, rec); err != nil {
			// Audit before forward: nothing is called.
			for _, i := range allowed {
				out[i].err = fmt.Errorf("%w: %w", ErrAudit, err)
			}
			return out
		}
	}
	runParallel(ctx, len(allowed), concurrency, func(j int) {
		i := allowed[j]
		out[i].val, out[i].err = p.next.Call(ctx, module, function, argv[i])
		if out[i].err == nil {
			p.learnAtoms(out[i].val)
		}
	})
	for _, i := range allowed {
		if out[i].val == nil && out[i].err == nil {
			out[i].err = ctx.Err()
		}
	}
	return out
}

// Redacted reads: a few calls the policy refuses to engineers because
// their replies carry more than a read-only session may see (a child
// spec's start arguments) are made by the views themselves, which keep
// only the named fields before anything is shown. Each is audited, saying
// what was kept; no engineer message ever reaches them.
var redactedReads = map[string]struct{ rule, reason string }{
	"supervisor:get_childspec/2": {"view.childspec_redacted",
		"the gateway reads the child spec and keeps only restart and type; start arguments never leave the gateway"},
}

// callRedacted makes one redacted read (redactedReads) of a production
// pid's data and returns keep(reply): the raw reply never leaves it.
func (p *PolicedCaller) callRedacted(ctx context.Context, module, function term.Atom, args []term.Term, kept string, keep func(term.Term) term.Term) (term.Term, error) {
	mfa := string(module) + ":" + string(function) + "/" + strconv.Itoa(len(args))
	rr, ok := redactedReads[mfa]
	if !ok || len(args) == 0 {
		return nil, fmt.Errorf("views: %s is not a redacted read", mfa)
	}
	if pid, ok := args[0].(term.Pid); !ok || string(pid.Node) != p.cfg.Target {
		return nil, &DeniedError{MFA: mfa, Rule: rr.rule, Reason: "only a pid of the target node"}
	}
	rec := &audit.Record{
		Event: audit.EventView, Session: p.cfg.Session, User: p.cfg.User,
		Engineer: p.cfg.Engineer, Target: p.cfg.Target, Cluster: p.cfg.Cluster,
		Dir: audit.DirE2P, Op: "SPAWN_REQUEST", MFA: mfa,
		Decision: audit.DecisionAllow, Rule: rr.rule, Reason: rr.reason,
		Detail: map[string]string{"view": viewName(ctx), "kept": kept},
	}
	w := audit.Writer{Sink: p.cfg.Audit, Timeout: -1}
	if err := w.Record(ctx, audit.Gate, rec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAudit, err)
	}
	reply, err := p.next.Call(ctx, module, function, args)
	if err != nil {
		return nil, err
	}
	return keep(reply), nil
}

// redactedCaller is implemented by callers that make redacted reads.
type redactedCaller interface {
	callRedacted(ctx context.Context, module, function term.Atom, args []term.Term, kept string, keep func(term.Term) term.Term) (term.Term, error)
}

func atoiOr(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// evaluate builds the message erpc:call(Target, M, F, Args) would send and
// runs it through the policy session.
func (p *PolicedCaller) evaluate(module, function term.Atom, args []term.Term) policy.Decision {
	reqID := p.newRef()
	m := dist.Message{
		Control: &dist.SpawnRequest{
			ReqID: reqID, From: p.self, GroupLeader: p.self,
			Module: "erpc", Function: "execute_call", Arity: 4,
			Opts: term.MakeList(term.Atom("monitor")),
		},
		Payload: term.MakeList(p.newRef(), module, function, term.MakeList(args...)),
	}
	d := p.sess.Evaluate(m)
	if d.Verdict.Forwarded() {
		// The session remembers forwarded spawn requests until it sees
		// their reply; the client consumes the real one, so tell the
		// session the request is settled.
		p.sess.Observe(&dist.SpawnReply{ReqID: reqID, To: p.self, Result: term.Atom("ok")}, nil)
	}
	return d
}

func (p *PolicedCaller) record(ctx context.Context, d policy.Decision) *audit.Record {
	return &audit.Record{
		Event: audit.EventView, Session: p.cfg.Session, User: p.cfg.User,
		Engineer: p.cfg.Engineer, Target: p.cfg.Target, Cluster: p.cfg.Cluster,
		Dir: audit.DirE2P, Op: d.Op, MFA: d.What,
		Decision: audit.Decision(d.Verdict.String()), Write: d.Write(), Rule: d.Rule, Reason: d.Reason,
		Args:   d.Args(),
		Detail: map[string]string{"view": viewName(ctx)},
	}
}

// learnAtoms adds the atoms of a reply to the target's known set, so that
// sending them back (a registered name, a table name) spends no atom
// budget: they already exist on production.
func (p *PolicedCaller) learnAtoms(t term.Term) {
	known := p.sess.Known()
	term.Walk(t, func(t term.Term) bool {
		if a, ok := t.(term.Atom); ok {
			known.Add(a)
		}
		return true
	})
}

func (p *PolicedCaller) newRef() term.Ref {
	n := p.ids.Add(1)
	return term.Ref{Node: term.Atom(p.cfg.Engineer), Creation: p.cfg.EngineerCreation,
		ID: []uint32{uint32(n & 0x3ffff), uint32(n >> 18), 0x76696577}}
}

type viewKey struct{}

// withView names the view making calls, for the audit records.
func withView(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, viewKey{}, name)
}

func viewName(ctx context.Context) string {
	s, _ := ctx.Value(viewKey{}).(string)
	return s
}
