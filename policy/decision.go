package policy

import (
	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

// Verdict is what happens to one engineer→production message.
type Verdict uint8

const (
	// Deny drops the message; the engineer gets the Decision's Answer.
	Deny Verdict = iota
	// Allow forwards the message.
	Allow
	// AllowWrite forwards a message that changes production state, under
	// mode audit; the audit record flags it as a write.
	AllowWrite
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case AllowWrite:
		return "allow_write"
	}
	return "deny"
}

// Forwarded reports whether the message goes to production.
func (v Verdict) Forwarded() bool { return v == Allow || v == AllowWrite }

// AnswerKind says how the relay answers a refused message, so that the
// engineer's tool fails at once instead of waiting for its timeout.
type AnswerKind uint8

const (
	// AnswerNone drops the message silently (it is still audited).
	AnswerNone AnswerKind = iota
	// AnswerSpawnError replies SPAWN_REPLY {31, ReqID, To, 0, Value} with
	// Value an atom: a direct spawn gets noconnection, so observer panels
	// degrade instead of crashing; dbg:do_relay gets beamgate_denied, so
	// dbg's relay raises instead of waiting for ever.
	AnswerSpawnError
	// AnswerErpcExit replies SPAWN_REPLY with a stand-in child pid and then
	// PAYLOAD_MONITOR_P_EXIT with {ResRef, exit, Value}: erpc:call raises
	// exit({exception, Value}) and rpc:call returns {badrpc, {'EXIT', Value}}.
	AnswerErpcExit
	// AnswerErpcReturn is AnswerErpcExit with {ResRef, return, Value}: a
	// refused read a tool cannot survive gets a placeholder result
	// (see substitute).
	AnswerErpcReturn
	// AnswerSend sends Value to To from a stand-in production pid
	// (SEND_SENDER): a rex gen_call gets its {Tag, {badrpc, ...}} reply.
	AnswerSend
	// AnswerDown delivers a monitor DOWN for Ref from Proc to To with reason
	// Value, so a gen:call to a refused destination exits at once.
	AnswerDown
	// AnswerStandInShell answers a remote shell's shell:start/0 (OTP 25
	// erl -remsh, ^G r) with a stand-in shell pid: SPAWN_REPLY and the
	// erpc result name it, it prints Notice through GroupLeader and exits
	// the group, so the refusal shows at once instead of a hang.
	AnswerStandInShell
)

// Answer describes the synthesised reply to a refused message. The relay
// turns it into frames; stand-in pids carry production's node name and
// creation.
type Answer struct {
	Kind   AnswerKind
	To     term.Pid  // the engineer's waiting process
	ReqID  term.Term // spawn request id (AnswerSpawnError, AnswerErpcExit)
	ResRef term.Term // erpc result reference (AnswerErpcExit)
	Ref    term.Ref  // monitor reference (AnswerDown)
	Proc   term.Term // the monitored process, pid or name (AnswerDown)
	Value  term.Term // error atom, exit reason, message, or DOWN reason

	// Notice, when set, is printed on the engineer's terminal first (an
	// io_request to its standard_error, or through GroupLeader for
	// AnswerStandInShell).
	Notice string
	// GroupLeader is the remote shell's group process (AnswerStandInShell).
	GroupLeader term.Pid
	// ProbeRemsh asks the engineer's init, after the answer, whether the
	// VM was started with -remsh (its reply is decided by the session).
	ProbeRemsh bool
	// Stop halts the engineer's VM (init {stop, {stop, 1}}): only once its
	// init said it was started with -remsh for this production node.
	Stop bool
}

// Decision is the outcome for one message, with what the audit log needs.
type Decision struct {
	Verdict Verdict
	// Rule names the matching rule ("" for the default).
	Rule string
	// Reason explains the decision in words an engineer understands.
	Reason string
	// Op is the control operation, e.g. "SPAWN_REQUEST".
	Op string
	// What is the MFA ("erlang:process_info/2") or destination.
	What string
	// args are the call's arguments or the message, rendered on demand by
	// Args.
	args term.Term
	// Answer is how a refusal is answered.
	Answer Answer
	// Fatal ends the session: forged identities and malformed messages.
	Fatal bool
	// Cleanup, when set, is a message the relay sends production on the
	// engineer's behalf after a refusal: the DEMONITOR_P for the monitor a
	// refused gen:call had set up (its caller got a synthesised DOWN and
	// will not remove it).
	Cleanup *dist.DemonitorP

	grant bool // forwarded call whose result pids become the session's own
}

// Args returns a bounded, redacted rendering of the arguments or message
// for the audit log ("" when there are none). It is computed on demand so
// that deciding stays cheap.
func (d *Decision) Args() string {
	if d.args == nil {
		return ""
	}
	return render(d.args)
}

// Write reports whether the decision forwards a state change.
func (d *Decision) Write() bool { return d.Verdict == AllowWrite }

// DeniedReason builds the term that refused calls carry back to the
// engineer: {beamgate_denied, What, <<"rule: reason">>}.
func DeniedReason(what term.Term, rule, reason string) term.Term {
	text := reason
	if rule != "" {
		text = rule + ": " + reason
	}
	return term.Tuple{term.Atom("beamgate_denied"), what, term.Binary(text)}
}
