package policy

import (
	"fmt"
	"strconv"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

func allow(rule, what string) Decision {
	return Decision{Verdict: Allow, Rule: rule, What: what}
}

// route decides by operation and destination (default deny).
func (s *Session) route(m dist.Message) Decision {
	switch c := m.Control.(type) {
	case *dist.SpawnRequest:
		return s.spawnRequest(m, c)
	case *dist.RegSend:
		return s.regSend(m, c)
	case *dist.Send:
		if d, ok := s.toStandIn(m, c.To); ok {
			return d
		}
		return s.sendTo(m, nil, c.To)
	case *dist.SendSender:
		if d, ok := s.toStandIn(m, c.To); ok && s.isOwn(c.From) {
			return d
		}
		return s.sendTo(m, &c.From, c.To)
	case *dist.AliasSend:
		return s.forged(m, c.From, func() Decision {
			return s.write(m, "send.alias", "sends to production aliases are state changes", pidOrRefText(c.Alias))
		})
	case *dist.MonitorP:
		return s.forged(m, c.From, func() Decision {
			if len(s.monitors) >= s.prof.MaxMonitors {
				return s.denied(m, "monitor-limit", fmt.Sprintf("the session holds %d monitors, the profile's max_monitors", len(s.monitors)), termText(c.To))
			}
			return allow("monitor", termText(c.To))
		})
	case *dist.DemonitorP:
		return s.forged(m, c.From, func() Decision { return allow("monitor", termText(c.To)) })
	case *dist.MonitorPExit:
		return s.ownProc(m, c.From, func() Decision { return allow("monitor.down", termText(c.To)) })
	case *dist.PayloadMonitorPExit:
		return s.ownProc(m, c.From, func() Decision { return allow("monitor.down", termText(c.To)) })
	case *dist.Link:
		return s.forged(m, c.From, func() Decision {
			if d, ok := s.toStandIn(m, c.To); ok {
				return d
			}
			if s.has(s.own, c.To) {
				return allow("session.own", termText(c.To))
			}
			return s.write(m, "link", "links to processes the session did not spawn would kill them when the engineer leaves", termText(c.To))
		})
	case *dist.UnlinkID:
		return s.forged(m, c.From, func() Decision { return s.linkSignal(m, c.To, "unlink") })
	case *dist.UnlinkIDAck:
		return s.forged(m, c.From, func() Decision { return s.linkSignal(m, c.To, "unlink") })
	case *dist.Exit:
		return s.forged(m, c.From, func() Decision { return s.linkSignal(m, c.To, "link.exit") })
	case *dist.PayloadExit:
		return s.forged(m, c.From, func() Decision { return s.linkSignal(m, c.To, "link.exit") })
	case *dist.Exit2:
		return s.forged(m, c.From, func() Decision { return s.exit2(m, c.To) })
	case *dist.PayloadExit2:
		return s.forged(m, c.From, func() Decision { return s.exit2(m, c.To) })
	case *dist.GroupLeader:
		return s.write(m, "group-leader", "GROUP_LEADER hijacks a production process's I/O", termText(c.To))
	}
	// Trace-token variants, SPAWN_REPLY from the engineer, op 37 (masked in
	// the handshake) and the obsolete operations.
	d := s.denied(m, "operation", fmt.Sprintf("%s is not an operation engineers' tools need", m.Control.Op()), m.Control.Op().String())
	return d
}

// forged refuses a message whose sender is not the engineer's own
// process: erts does not check senders of sends and spawn requests (docs/wire.md#sender-checks).
func (s *Session) forged(m dist.Message, from term.Pid, next func() Decision) Decision {
	if !s.isOwn(from) {
		d := s.denied(m, "identity", fmt.Sprintf("the sender %s is not a process of the engineer's node %s", termText(from), s.engineer), termText(from))
		d.Fatal = true
		return d
	}
	return next()
}

// ownProc is forged for senders that may be a pid or a registered name.
func (s *Session) ownProc(m dist.Message, from term.Term, next func() Decision) Decision {
	switch v := from.(type) {
	case term.Pid:
		return s.forged(m, v, next)
	case term.Atom:
		return next()
	}
	d := s.denied(m, "identity", "the sender is neither a pid nor a name", termText(from))
	d.Fatal = true
	return d
}

func (s *Session) linkSignal(m dist.Message, to term.Pid, rule string) Decision {
	if d, ok := s.toStandIn(m, to); ok {
		return d
	}
	if s.has(s.own, to) || s.has(s.linked, to) {
		return allow(rule, termText(to))
	}
	return s.write(m, rule, "link signals only go to processes linked with the session", termText(to))
}

func (s *Session) exit2(m dist.Message, to term.Pid) Decision {
	if s.has(s.own, to) {
		return allow("session.own", termText(to))
	}
	return s.write(m, "process.signal", "exit signals to production processes kill them", termText(to))
}

// write handles a state change that no rule allows: refused under
// enforce, forwarded and flagged under audit.
func (s *Session) write(m dist.Message, rule, reason, what string) Decision {
	if s.mode == Audit {
		return Decision{Verdict: AllowWrite, Rule: rule, Reason: reason, What: what}
	}
	return s.denied(m, rule, reason, what)
}

func (s *Session) denied(m dist.Message, rule, reason, what string) Decision {
	d := Decision{What: what}
	s.refuse(&d, m, rule, reason)
	return d
}

// refuse turns d into a refusal of m with the answer m's operation needs.
func (s *Session) refuse(d *Decision, m dist.Message, rule, reason string) {
	d.Verdict, d.Rule, d.Reason = Deny, rule, reason
	d.Answer = s.answerFor(m, rule, reason)
}

func (s *Session) sendTo(m dist.Message, from *term.Pid, to term.Pid) Decision {
	if from != nil && !s.isOwn(*from) {
		return s.forged(m, *from, nil)
	}
	what := termText(to)
	if s.has(s.own, to) {
		return allow("session.own", what)
	}
	if s.has(s.ioReq, to) && term.IsTagged(m.Payload, "io_reply", 3) {
		return allow("io.reply", what)
	}
	if s.shell != "" && s.peers != nil && s.has(s.peers, to) {
		return Decision{Verdict: Allow, Rule: ShellRule, Reason: "an answer to a process that messaged the engineer during a break-glass shell (grant " + s.shell + ")", What: what}
	}
	return s.write(m, "send", "messages to production processes the session did not spawn are state changes", what)
}

func (s *Session) regSend(m dist.Message, c *dist.RegSend) Decision {
	if !s.isOwn(c.From) {
		return s.forged(m, c.From, nil)
	}
	name := c.ToName
	what := string(name)
	switch name {
	case "net_kernel":
		call, ok := genCall(m.Payload)
		if ok && !s.isOwn(call.from) {
			// net_kernel replies {Tag, yes} to the caller in the request.
			return s.forged(m, call.from, nil)
		}
		if ok && term.IsTagged(call.req, "is_auth", 2) {
			return allow("net_kernel.is_auth", "net_kernel is_auth")
		}
		return s.denied(m, "net_kernel", "only is_auth (net_adm:ping) may reach net_kernel", what)
	case "rex":
		return s.rex(m, c)
	case "global_name_server", "global_group", "global_group_check", "pg":
		// A visible engineer's node syncing global or pg: joining
		// production's cluster, in no mode read-only.
		return s.denied(m, "cluster.membership", fmt.Sprintf("%s messages would make the engineer's node a member of production's cluster; start it with -connect_all false (as the recipe does) or -hidden", name), what)
	}
	return s.write(m, "send.registered", fmt.Sprintf("messages to the registered process %s are state changes", name), what)
}

type genCallMsg struct {
	from term.Pid
	tag  term.Term
	req  term.Term
}

// genCall recognises {'$gen_call', {Pid, Tag}, Request}.
func genCall(t term.Term) (genCallMsg, bool) {
	tp, ok := t.(term.Tuple)
	if !ok || len(tp) != 3 || tp[0] != term.Atom("$gen_call") {
		return genCallMsg{}, false
	}
	from, ok := tp[1].(term.Tuple)
	if !ok || len(from) != 2 {
		return genCallMsg{}, false
	}
	pid, ok := from[0].(term.Pid)
	if !ok {
		return genCallMsg{}, false
	}
	return genCallMsg{from: pid, tag: from[1], req: tp[2]}, true
}

func (s *Session) rex(m dist.Message, c *dist.RegSend) Decision {
	if call, ok := genCall(m.Payload); ok {
		if !s.isOwn(call.from) {
			return s.forged(m, call.from, nil)
		}
		if req, ok := call.req.(term.Tuple); ok && len(req) == 5 && (req[0] == term.Atom("call") || req[0] == term.Atom("block_call")) {
			return s.mfaCall(m, &s.prof.calls, req[1], req[2], req[3], req[4])
		}
		return s.denied(m, "rex", "rex accepts only call and block_call from engineers", "rex")
	}
	if tp, ok := m.Payload.(term.Tuple); ok && len(tp) == 2 {
		if from, ok := tp[0].(term.Pid); ok {
			if !s.isOwn(from) {
				return s.forged(m, from, nil)
			}
			if tp[1] == term.Atom("features_request") {
				return allow("rex.features", "rex features_request")
			}
			if req, ok := tp[1].(term.Tuple); ok && len(req) == 5 && req[0] == term.Atom("call") {
				return s.mfaCall(m, &s.prof.calls, req[1], req[2], req[3], req[4])
			}
		}
	}
	return s.denied(m, "rex", "rex casts, sbcast and send forward messages to any process", "rex")
}

// mfaCall evaluates M:F(Args) called through rex. gl is the caller's group
// leader, which must be the engineer's.
func (s *Session) mfaCall(m dist.Message, set *ruleSet, mod, fun, args, gl term.Term) Decision {
	mAtom, ok1 := mod.(term.Atom)
	fAtom, ok2 := fun.(term.Atom)
	argv, ok3 := term.ListElems(args)
	if !ok1 || !ok2 || !ok3 {
		return s.denied(m, "malformed", "the call is not {Module, Function, Args} with atoms and a proper list", "?")
	}
	if gl != nil {
		if p, ok := gl.(term.Pid); ok && !s.isOwn(p) {
			return s.denied(m, "identity", "the group leader is not a process of the engineer's node", mfaText(mAtom, fAtom, len(argv)))
		}
	}
	d := s.evalMFA(set, mAtom, fAtom, argv)
	d.What = mfaText(mAtom, fAtom, len(argv))
	d.args = args
	if !d.Verdict.Forwarded() {
		d.Answer = s.answerFor(m, d.Rule, d.Reason)
	}
	return d
}

func (s *Session) spawnRequest(m dist.Message, c *dist.SpawnRequest) Decision {
	if !s.isOwn(c.From) {
		return s.forged(m, c.From, nil)
	}
	if !s.isOwn(c.GroupLeader) {
		return s.denied(m, "identity", "the group leader is not a process of the engineer's node", mfaText(c.Module, c.Function, c.Arity))
	}
	opts, ok := term.ListElems(c.Opts)
	if !ok {
		return s.denied(m, "spawn.options", "spawn options must be a proper list", mfaText(c.Module, c.Function, c.Arity))
	}
	for _, o := range opts {
		if o != term.Atom("link") && o != term.Atom("monitor") {
			return s.denied(m, "spawn.options", fmt.Sprintf("spawn option %s is refused: only link and monitor", render(o)), mfaText(c.Module, c.Function, c.Arity))
		}
	}
	args, ok := term.ListElems(m.Payload)
	if !ok || len(args) != c.Arity {
		return s.denied(m, "malformed", "the spawn arguments are not a proper list of the declared arity", mfaText(c.Module, c.Function, c.Arity))
	}
	var d Decision
	switch {
	case c.Module == "erpc" && c.Function == "execute_call" && c.Arity == 4 && remoteShellStart(c, args) != "":
		d = s.remoteShell(m, c, args)
	case c.Module == "erpc" && c.Function == "execute_call" && c.Arity == 4 && s.shell != "" && shellStartup(args):
		d = Decision{Verdict: Allow, Rule: ShellRule, Reason: "a remote shell's start-up read, under break-glass grant " + s.shell,
			What: mfaText(args[1].(term.Atom), args[2].(term.Atom), c.Arity), args: args[3]}
	case c.Module == "erpc" && c.Function == "execute_call" && c.Arity == 4:
		d = s.mfaCall(m, &s.prof.calls, args[1], args[2], args[3], nil)
		if d.Rule == RemoteShellRule && s.shell != "" && c.From == c.GroupLeader {
			// A group starting its initial shell (iex --remsh's
			// IEx:start/2, a custom shell MFA) under a grant.
			mAtom, _ := args[1].(term.Atom)
			fAtom, _ := args[2].(term.Atom)
			argv, _ := term.ListElems(args[3])
			d = Decision{Verdict: Allow, Rule: ShellRule, Reason: "break-glass grant " + s.shell, What: mfaText(mAtom, fAtom, len(argv)), args: args[3], grant: true}
		}
		if d.Verdict == Deny && d.Answer.Kind == AnswerErpcExit {
			mAtom, _ := args[1].(term.Atom)
			fAtom, _ := args[2].(term.Atom)
			argv, _ := term.ListElems(args[3])
			if v, ok := substitute(mAtom, fAtom, argv, d.Rule); ok {
				d.Answer.Kind, d.Answer.Value = AnswerErpcReturn, v
			}
		}
	case c.Module == "erpc" && c.Function == "execute_cast" && c.Arity == 3:
		d = s.mfaCall(m, &s.prof.calls, args[0], args[1], args[2], nil)
	default:
		d = s.evalMFA(&s.prof.spawns, c.Module, c.Function, args)
		d.What = mfaText(c.Module, c.Function, c.Arity)
		d.args = m.Payload
		if !d.Verdict.Forwarded() {
			d.Answer = s.answerFor(m, d.Rule, d.Reason)
		}
	}
	if d.Verdict.Forwarded() {
		// Production's replies are matched to requests by id: another
		// request with the id of a call whose result grants pids would
		// have its own result taken for the granted one.
		if k, ok := keyOfRef(c.ReqID); ok {
			if p, dup := s.pending[k]; dup && (p.grant || d.grant) {
				s.refuse(&d, m, "malformed", "the spawn request reuses the id of a request production has not answered")
			}
		}
	}
	return d
}

// evalMFA applies a profile to M:F(Args). set is calls or spawns.
func (s *Session) evalMFA(set *ruleSet, mod, fun term.Atom, args []term.Term) Decision {
	m, f, a := string(mod), string(fun), len(args)
	// module_info/0,1 only describes a module, whichever module it is.
	if rs := always.lookup(m, f, a); len(rs) > 0 && f != "module_info" {
		return Decision{Verdict: Deny, Rule: rs[0].Name, Reason: rs[0].Reason}
	}
	var argFail *Rule
	for _, r := range set.lookup(m, f, a) {
		if r.argsMatch(args, s.isOwn) {
			return Decision{Verdict: Allow, Rule: r.Name, grant: r.SessionPids}
		}
		if argFail == nil {
			argFail = r
		}
	}
	if rs := s.prof.never.lookup(m, f, a); len(rs) > 0 {
		return Decision{Verdict: Deny, Rule: rs[0].Name, Reason: orDefault(rs[0].Reason, "refused by the profile in every mode")}
	}
	if rs := s.prof.writes.lookup(m, f, a); len(rs) > 0 {
		if s.mode == Audit {
			return Decision{Verdict: AllowWrite, Rule: rs[0].Name, Reason: orDefault(rs[0].Reason, "a state change, passed under mode audit")}
		}
		return Decision{Verdict: Deny, Rule: rs[0].Name, Reason: orDefault(rs[0].Reason, "a state change; this role's mode is enforce")}
	}
	if argFail != nil {
		return Decision{Verdict: Deny, Rule: argFail.Name, Reason: orDefault(argFail.Reason, "these arguments are not allowed")}
	}
	if s.mode == Audit {
		return Decision{Verdict: AllowWrite, Rule: "default", Reason: "not known to be read-only; passed under mode audit"}
	}
	return Decision{Verdict: Deny, Rule: "default", Reason: fmt.Sprintf("not in the %s profile's allowlist", s.prof.Name)}
}

func orDefault(s, d string) string {
	if s != "" {
		return s
	}
	return d
}

func (r *Rule) argsMatch(args []term.Term, own func(term.Pid) bool) bool {
	for i, m := range r.Args {
		if i >= len(args) {
			break
		}
		if !m.Match(args[i], own) {
			return false
		}
	}
	return true
}

// answerFor builds the immediate error a refused message gets (docs/wire.md#answers).
func (s *Session) answerFor(m dist.Message, rule, reason string) Answer {
	switch c := m.Control.(type) {
	case *dist.SpawnRequest:
		args, _ := term.ListElems(m.Payload)
		switch {
		case c.Module == "erpc" && c.Function == "execute_call" && len(args) == 4:
			what := mfaTuple(args[1], args[2], args[3])
			return Answer{Kind: AnswerErpcExit, To: c.From, ReqID: c.ReqID, ResRef: args[0], Value: DeniedReason(what, rule, reason)}
		case c.Module == "erpc":
			return Answer{Kind: AnswerSpawnError, To: c.From, ReqID: c.ReqID, Value: term.Atom("beamgate_denied")}
		case c.Module == "dbg" && c.Function == "do_relay":
			// dbg:relay/2 (observer's Start Trace, ttb, dbg:n/1) waits
			// for {started, _} with no timeout: noconnection would have
			// spawn_link return a pid and leave the engineer's dbg server
			// stuck for good. An error atom makes spawn_link raise, which
			// dbg catches and reports; observer stays usable.
			return Answer{Kind: AnswerSpawnError, To: c.From, ReqID: c.ReqID, Value: term.Atom("beamgate_denied")}
		}
		return Answer{Kind: AnswerSpawnError, To: c.From, ReqID: c.ReqID, Value: term.Atom("noconnection")}
	case *dist.RegSend:
		if call, ok := genCall(m.Payload); ok {
			if c.ToName == "rex" {
				what := term.Term(term.Atom("rex"))
				if req, ok := call.req.(term.Tuple); ok && len(req) == 5 {
					what = mfaTuple(req[1], req[2], req[3])
				}
				reply := term.Tuple{term.Atom("badrpc"), term.Tuple{term.Atom("EXIT"), DeniedReason(what, rule, reason)}}
				return Answer{Kind: AnswerSend, To: call.from, Value: term.Tuple{call.tag, reply}}
			}
			if ref, ok := monitorRef(call.tag); ok && s.isOwn(call.from) {
				return Answer{Kind: AnswerDown, To: call.from, Ref: ref, Proc: c.ToName, Value: DeniedReason(c.ToName, rule, reason)}
			}
		}
		if tp, ok := m.Payload.(term.Tuple); ok && len(tp) == 2 && c.ToName == "rex" {
			if from, ok := tp[0].(term.Pid); ok && s.isOwn(from) {
				what := term.Term(term.Atom("rex"))
				if req, ok := tp[1].(term.Tuple); ok && len(req) == 5 {
					what = mfaTuple(req[1], req[2], req[3])
				}
				reply := term.Tuple{term.Atom("rex"), term.Tuple{term.Atom("badrpc"), term.Tuple{term.Atom("EXIT"), DeniedReason(what, rule, reason)}}}
				return Answer{Kind: AnswerSend, To: from, Value: reply}
			}
		}
	case *dist.Send, *dist.SendSender, *dist.AliasSend:
		var to term.Term
		switch c := c.(type) {
		case *dist.Send:
			to = c.To
		case *dist.SendSender:
			to = c.To
		case *dist.AliasSend:
			to = c.Alias
		}
		if call, ok := genCall(m.Payload); ok && s.isOwn(call.from) {
			if ref, ok := monitorRef(call.tag); ok {
				return Answer{Kind: AnswerDown, To: call.from, Ref: ref, Proc: to, Value: DeniedReason(to, rule, reason)}
			}
		}
	}
	return Answer{}
}

// monitorRef extracts the monitor reference from a gen:call tag:
// [alias|Mref] (OTP 24+) or a plain Mref.
func monitorRef(tag term.Term) (term.Ref, bool) {
	switch v := tag.(type) {
	case term.Ref:
		return v, true
	case term.List:
		if len(v.Elems) == 1 && v.Elems[0] == term.Atom("alias") {
			r, ok := v.Tail.(term.Ref)
			return r, ok
		}
	}
	return term.Ref{}, false
}

func mfaTuple(m, f, args term.Term) term.Term {
	argv, _ := term.ListElems(args)
	return term.Tuple{m, f, term.Int(len(argv))}
}

func mfaText(m, f term.Atom, a int) string {
	return string(m) + ":" + string(f) + "/" + strconv.Itoa(a)
}

func termText(t term.Term) string { return term.Format(t, 128) }

func pidOrRefText(t term.Term) string { return termText(t) }

// render is the bounded, redacted rendering of arguments for the audit
// log: binaries and strings longer than 64 bytes are replaced by their size.
func render(t term.Term) string {
	return term.Format(redact(t, 0), renderMax)
}

// redactElems bounds how many elements of a tuple or list are rendered.
const redactElems = 32

func redact(t term.Term, depth int) term.Term {
	if depth > 8 {
		return term.Atom("...")
	}
	switch v := t.(type) {
	case term.Binary:
		if len(v) > 64 {
			return term.Atom(fmt.Sprintf("<<%d bytes>>", len(v)))
		}
	case term.String:
		if len(v) > 64 {
			return term.Atom(fmt.Sprintf("\"%d chars\"", len(v)))
		}
	case term.BitBinary:
		return term.Atom(fmt.Sprintf("<<%d bytes>>", len(v.Data)))
	case term.Tuple:
		n := min(len(v), redactElems)
		out := make(term.Tuple, n, n+1)
		for i := range n {
			out[i] = redact(v[i], depth+1)
		}
		if n < len(v) {
			out = append(out, term.Atom("..."))
		}
		return out
	case term.List:
		n := min(len(v.Elems), redactElems)
		out := term.List{Elems: make([]term.Term, n, n+1), Tail: redact(v.Tail, depth+1)}
		for i := range n {
			out.Elems[i] = redact(v.Elems[i], depth+1)
		}
		if n < len(v.Elems) {
			out.Elems = append(out.Elems, term.Atom("..."))
		}
		return out
	}
	return t
}
