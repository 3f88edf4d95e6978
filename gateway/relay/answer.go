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
// instead of production's reply.
func (s *session) answerMessages(a policy.Answer) []dist.Message {
	switch a.Kind {
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
