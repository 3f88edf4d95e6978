package relay

import (
	"fmt"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
	"beamgate/policy"
)

// standInPid returns a pid on production's node that stands in for a
// process that was never spawned, as the sender of synthesised answers
// (docs/wire.md#answers: any Pid(prod, N, 0, Creation) works).
func (s *session) standInPid() term.Pid {
	return term.Pid{Node: term.Atom(s.target.Name), ID: s.r.standIn.Add(1) & 0x0fffffff, Serial: 0, Creation: s.legs.prodCreation}
}

// answerMessages turns a policy Answer into the messages the engineer gets
// instead of production's reply: the notice first, then the reply, then
// what follows a refused remote shell (the remsh probe, the stop).
func (s *session) answerMessages(a policy.Answer) []dist.Message {
	var msgs []dist.Message
	if a.Notice != "" && a.Kind != policy.AnswerStandInShell {
		msgs = append(msgs, dist.Message{Control: &dist.RegSend{From: s.standInPid(), ToName: "standard_error"},
			Payload: ioPutChars(a.To, s.eng.localize(a.Notice))})
	}
	msgs = append(msgs, s.replyMessages(a)...)
	if a.ProbeRemsh {
		// init answers {get_argument, remsh} to any sender (init.erl
		// handle_msg/2); the session decides on the reply.
		p := s.standInPid()
		s.pol.NoteStandIn(p)
		msgs = append(msgs, dist.Message{Control: &dist.RegSend{From: p, ToName: "init"},
			Payload: term.Tuple{p, term.Tuple{term.Atom("get_argument"), term.Atom("remsh")}}})
	}
	if a.Stop {
		msgs = append(msgs, dist.Message{Control: &dist.RegSend{From: s.standInPid(), ToName: "init"},
			Payload: term.Tuple{term.Atom("stop"), term.Tuple{term.Atom("stop"), term.Int(1)}}})
	}
	return msgs
}

// ioPutChars is an io_request printing text, replies going to replyTo.
func ioPutChars(replyTo term.Pid, text string) term.Term {
	return term.Tuple{term.Atom("io_request"), replyTo, term.Atom("beamgate_notice"),
		term.Tuple{term.Atom("put_chars"), term.Atom("unicode"), term.Binary(text)}}
}

// replyMessages is the reply part of answerMessages.
func (s *session) replyMessages(a policy.Answer) []dist.Message {
	switch a.Kind {
	case policy.AnswerStandInShell:
		// A stand-in shell: the spawn succeeds and the call returns its
		// pid; it prints the notice through the group and exits it, so
		// OTP's user_drv reports the shell gone at once. All four come
		// from one pid, so the engineer's node sees them in order.
		ref, ok := a.ReqID.(term.Ref)
		if !ok {
			return nil
		}
		shell := s.standInPid()
		s.pol.NoteStandIn(shell)
		return []dist.Message{
			{Control: &dist.SpawnReply{ReqID: a.ReqID, To: a.To, Flags: 2, Result: shell}},
			{Control: &dist.PayloadMonitorPExit{From: shell, To: a.To, Ref: ref}, Payload: term.Tuple{a.ResRef, term.Atom("return"), shell}},
			{Control: &dist.SendSender{From: shell, To: a.GroupLeader}, Payload: ioPutChars(shell, s.eng.localize(a.Notice))},
			{Control: &dist.PayloadExit2{From: shell, To: a.GroupLeader}, Payload: term.Atom("beamgate_denied")},
		}
	case policy.AnswerSpawnError:
		return []dist.Message{{Control: &dist.SpawnReply{ReqID: a.ReqID, To: a.To, Flags: 0, Result: a.Value}}}
	case policy.AnswerErpcExit, policy.AnswerErpcReturn:
		ref, ok := a.ReqID.(term.Ref)
		if !ok {
			return nil
		}
		class := term.Atom("exit")
		if a.Kind == policy.AnswerErpcReturn {
			class = "return"
		}
		child := s.standInPid()
		return []dist.Message{
			{Control: &dist.SpawnReply{ReqID: a.ReqID, To: a.To, Flags: 2, Result: child}},
			{Control: &dist.PayloadMonitorPExit{From: child, To: a.To, Ref: ref},
				Payload: term.Tuple{a.ResRef, class, a.Value}},
		}
	case policy.AnswerSend:
		return []dist.Message{{Control: &dist.SendSender{From: s.standInPid(), To: a.To}, Payload: a.Value}}
	case policy.AnswerDown:
		return []dist.Message{{Control: &dist.MonitorPExit{From: a.Proc, To: a.To, Ref: a.Ref, Reason: a.Value}}}
	}
	return nil
}

// answer queues the synthesised reply to a refused message for the
// engineer.
func (s *session) answer(a policy.Answer) error {
	for _, m := range s.answerMessages(a) {
		frame, err := dist.AppendMessageFrame(nil, m)
		if err != nil {
			return fmt.Errorf("relay: encoding an answer: %w", err)
		}
		if err := s.out.push(frame); err != nil {
			return &EndError{Reason: err.Error()}
		}
	}
	return nil
}

// malformedAnswer answers a refused message whose payload could not be
// decoded: a spawn request from one of the engineer's own processes gets
// SPAWN_REPLY with the atom beamgate_denied (rpc:call returns
// {badrpc, {'EXIT', beamgate_denied}}); anything else is only dropped.
func (s *session) malformedAnswer(ctrl dist.Control) policy.Answer {
	sr, ok := ctrl.(*dist.SpawnRequest)
	if !ok || string(sr.From.Node) != s.legs.engName || sr.From.Creation != s.legs.engCreation {
		return policy.Answer{}
	}
	return policy.Answer{Kind: policy.AnswerSpawnError, To: sr.From, ReqID: sr.ReqID, Value: term.Atom("beamgate_denied")}
}
