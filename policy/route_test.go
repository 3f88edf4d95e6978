package policy

import (
	"testing"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

// cast names the processes and references the route table talks about, on
// one pair of engineer and production nodes. The table is built from a
// cast so that FuzzEvaluate can seed itself with the same messages on the
// nodes of the captured frames.
type cast struct {
	engNode, prodNode term.Atom
	engCre, prodCre   uint32

	eng, gl term.Pid // the engineer's caller and its group leader
	stale   term.Pid // the engineer's node name with another creation
	prod    term.Pid // a production process the session knows nothing about
	own     term.Pid // a production process the session spawned (with link)
	linked  term.Pid // a production process that linked itself to the engineer
	io      term.Pid // a production process that sent the engineer an io_request

	req, res term.Ref // a spawn request id and an erpc result reference
	mon      term.Ref // a monitor reference (the gen:call alias)
	prime    term.Ref // the request id that spawned own
}

func newCast(engNode term.Atom, engCre uint32, prodNode term.Atom, prodCre uint32) *cast {
	ep := func(id uint32) term.Pid { return term.Pid{Node: engNode, ID: id, Creation: engCre} }
	pp := func(id uint32) term.Pid { return term.Pid{Node: prodNode, ID: id, Creation: prodCre} }
	er := func(a, b, c uint32) term.Ref { return term.Ref{Node: engNode, Creation: engCre, ID: []uint32{a, b, c}} }
	return &cast{
		engNode: engNode, prodNode: prodNode, engCre: engCre, prodCre: prodCre,
		eng: ep(90), gl: ep(64), stale: term.Pid{Node: engNode, ID: 90, Creation: engCre + 1},
		prod: pp(120), own: pp(500), linked: pp(501), io: pp(502),
		req: er(1, 2, 3), res: er(4, 5, 6), mon: er(9, 9, 9), prime: er(7, 7, 7),
	}
}

// testCast is the cast of the unit tests, on policy_test.go's nodes.
var testCast = newCast(eng, 7, prod, 3)

// session returns a session on c's nodes that has spawned c.own, is
// linked with c.linked and has had an io_request from c.io.
func (c *cast) session(t testing.TB, p *Profile, mode Mode) *Session {
	t.Helper()
	s := NewSession(SessionConfig{Profile: p, Mode: mode, Engineer: c.engNode, EngineerCreation: c.engCre, Production: c.prodNode, ProductionCreation: c.prodCre})
	collector := c.spawn("observer_backend", "procs_info", term.MakeList(term.Atom("link")), c.eng)
	collector.Control.(*dist.SpawnRequest).ReqID = c.prime
	if d := s.Evaluate(collector); d.Verdict != Allow {
		t.Fatalf("priming spawn: %s by %s (%s)", d.Verdict, d.Rule, d.Reason)
	}
	s.Observe(&dist.SpawnReply{ReqID: c.prime, To: c.eng, Flags: dist.SpawnReplyLink, Result: c.own}, nil)
	s.Observe(&dist.Link{From: c.linked, To: c.eng}, nil)
	s.Observe(&dist.SendSender{From: c.io, To: c.gl}, marshal(t, c.ioRequest()))
	return s
}

func (c *cast) ioRequest() term.Term {
	return term.Tuple{term.Atom("io_request"), c.io, term.Atom("reply_as"), term.Tuple{term.Atom("put_chars"), term.Atom("unicode"), term.Binary("hi\n")}}
}

func marshal(t testing.TB, v term.Term) []byte {
	t.Helper()
	b, err := term.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *cast) erpc(m, f string, args ...term.Term) dist.Message {
	return dist.Message{
		Control: &dist.SpawnRequest{ReqID: c.req, From: c.eng, GroupLeader: c.gl, Module: "erpc", Function: "execute_call", Arity: 4, Opts: term.MakeList(term.Atom("monitor"))},
		Payload: term.MakeList(c.res, term.Atom(m), term.Atom(f), term.MakeList(args...)),
	}
}

func (c *cast) cast(m, f string, args ...term.Term) dist.Message {
	return dist.Message{
		Control: &dist.SpawnRequest{ReqID: c.req, From: c.eng, GroupLeader: c.gl, Module: "erpc", Function: "execute_cast", Arity: 3, Opts: term.Nil{}},
		Payload: term.MakeList(term.Atom(m), term.Atom(f), term.MakeList(args...)),
	}
}

func (c *cast) spawn(m, f string, opts term.Term, args ...term.Term) dist.Message {
	return dist.Message{
		Control: &dist.SpawnRequest{ReqID: c.req, From: c.eng, GroupLeader: c.gl, Module: term.Atom(m), Function: term.Atom(f), Arity: len(args), Opts: opts},
		Payload: term.MakeList(args...),
	}
}

// tag is a gen:call tag, [alias|Mref].
func (c *cast) tag() term.Term {
	return term.List{Elems: []term.Term{term.Atom("alias")}, Tail: c.mon}
}

// regSend sends payload from c.eng to the registered name.
func (c *cast) regSend(name string, payload term.Term) dist.Message {
	return c.regSendFrom(c.eng, name, payload)
}

func (c *cast) regSendFrom(from term.Pid, name string, payload term.Term) dist.Message {
	return dist.Message{Control: &dist.RegSend{From: from, Unused: term.EmptyAtom, ToName: term.Atom(name)}, Payload: payload}
}

// genCall is a gen_server:call from `from` to the registered name.
func (c *cast) genCall(name string, from term.Pid, tag, req term.Term) dist.Message {
	return c.regSend(name, term.Tuple{term.Atom("$gen_call"), term.Tuple{from, tag}, req})
}

// rexCall is a gen_server call to rex: {Kind, M, F, Args, GL}.
func (c *cast) rexCall(kind, m, f string, args term.Term, gl term.Term) dist.Message {
	return c.genCall("rex", c.eng, c.tag(), term.Tuple{term.Atom(kind), term.Atom(m), term.Atom(f), args, gl})
}

func ctl(c dist.Control) dist.Message { return dist.Message{Control: c} }

func withPayload(c dist.Control, p term.Term) dist.Message {
	return dist.Message{Control: c, Payload: p}
}

// anyAnswer in a routeCase skips the check of the answer's kind.
const anyAnswer AnswerKind = 255

type routeCase struct {
	name    string
	mode    Mode
	msg     dist.Message
	verdict Verdict
	rule    string
	fatal   bool
	answer  AnswerKind
}

// routeCases is one row, at least, per control operation and per decision
// path of route and Evaluate, on c's nodes, for a session made by
// c.session.
func routeCases(c *cast) []routeCase {
	kill := term.Atom("kill")
	ioReply := term.Tuple{term.Atom("io_reply"), term.Atom("reply_as"), term.Atom("ok")}
	prodCall := term.Tuple{term.Atom("$gen_call"), term.Tuple{c.eng, c.tag()}, term.Atom("get_state")}
	badOpts := term.List{Elems: []term.Term{term.Atom("monitor")}, Tail: term.Atom("link")}
	arity := c.erpc("erlang", "node")
	arity.Payload = term.MakeList(c.res, term.Atom("erlang"), term.Atom("node"))
	badGL := c.erpc("erlang", "node")
	badGL.Control.(*dist.SpawnRequest).GroupLeader = c.prod
	forgedSpawn := c.erpc("erlang", "node")
	forgedSpawn.Control.(*dist.SpawnRequest).From = c.stale
	stringMod := c.erpc("erlang", "node")
	stringMod.Payload = term.MakeList(c.res, term.String("os"), term.Atom("cmd"), term.MakeList(term.String("id")))
	improperArgs := c.erpc("erlang", "node")
	improperArgs.Payload = term.MakeList(c.res, term.Atom("erlang"), term.Atom("node"), term.List{Elems: []term.Term{term.Int(1)}, Tail: term.Int(2)})
	forgedCode := c.erpc("lists", "map", term.Export{Module: "os", Function: "cmd", Arity: 1}, term.Nil{})
	forgedCode.Control.(*dist.SpawnRequest).From = c.stale
	codeOpt := c.spawn("observer_backend", "procs_info", term.MakeList(term.Export{Module: "os", Function: "cmd", Arity: 1}), c.eng)

	return []routeCase{
		// LINK: only to the session's own processes; others would die
		// with the session.
		{"link own", Enforce, ctl(&dist.Link{From: c.eng, To: c.own}), Allow, "session.own", false, AnswerNone},
		{"link production", Enforce, ctl(&dist.Link{From: c.eng, To: c.prod}), Deny, "link", false, AnswerNone},
		{"link linked", Enforce, ctl(&dist.Link{From: c.eng, To: c.linked}), Deny, "link", false, AnswerNone},
		{"link production audit", Audit, ctl(&dist.Link{From: c.eng, To: c.prod}), AllowWrite, "link", false, AnswerNone},
		{"link forged", Audit, ctl(&dist.Link{From: c.stale, To: c.own}), Deny, "identity", true, AnswerNone},

		// SEND (no sender) and SEND_SENDER.
		{"send own", Enforce, withPayload(&dist.Send{Unused: term.EmptyAtom, To: c.own}, term.Atom("exit")), Allow, "session.own", false, AnswerNone},
		{"send io_reply", Enforce, withPayload(&dist.Send{Unused: term.EmptyAtom, To: c.io}, ioReply), Allow, "io.reply", false, AnswerNone},
		{"send io_reply unasked", Enforce, withPayload(&dist.Send{Unused: term.EmptyAtom, To: c.prod}, ioReply), Deny, "send", false, AnswerNone},
		{"send other to io requester", Enforce, withPayload(&dist.Send{Unused: term.EmptyAtom, To: c.io}, term.Atom("hello")), Deny, "send", false, AnswerNone},
		{"send production audit", Audit, withPayload(&dist.Send{Unused: term.EmptyAtom, To: c.prod}, term.Atom("hello")), AllowWrite, "send", false, AnswerNone},
		{"send gen_call production", Enforce, withPayload(&dist.Send{Unused: term.EmptyAtom, To: c.prod}, prodCall), Deny, "send", false, AnswerDown},
		{"send_sender own", Enforce, withPayload(&dist.SendSender{From: c.eng, To: c.own}, term.Atom("exit")), Allow, "session.own", false, AnswerNone},
		{"send_sender io_reply", Enforce, withPayload(&dist.SendSender{From: c.gl, To: c.io}, ioReply), Allow, "io.reply", false, AnswerNone},
		{"send_sender production", Enforce, withPayload(&dist.SendSender{From: c.eng, To: c.prod}, term.Atom("hello")), Deny, "send", false, AnswerNone},
		{"send_sender gen_call production", Enforce, withPayload(&dist.SendSender{From: c.eng, To: c.prod}, prodCall), Deny, "send", false, AnswerDown},
		{"send_sender production audit", Audit, withPayload(&dist.SendSender{From: c.eng, To: c.prod}, term.Atom("hello")), AllowWrite, "send", false, AnswerNone},
		{"send_sender forged", Audit, withPayload(&dist.SendSender{From: c.prod, To: c.own}, term.Atom("hello")), Deny, "identity", true, AnswerNone},

		// EXIT and PAYLOAD_EXIT: link signals, to linked processes only.
		{"exit own", Enforce, ctl(&dist.Exit{From: c.eng, To: c.own, Reason: term.Atom("shutdown")}), Allow, "link.exit", false, AnswerNone},
		{"exit linked", Enforce, ctl(&dist.Exit{From: c.eng, To: c.linked, Reason: term.Atom("shutdown")}), Allow, "link.exit", false, AnswerNone},
		{"exit production", Enforce, ctl(&dist.Exit{From: c.eng, To: c.prod, Reason: kill}), Deny, "link.exit", false, AnswerNone},
		{"exit production audit", Audit, ctl(&dist.Exit{From: c.eng, To: c.prod, Reason: kill}), AllowWrite, "link.exit", false, AnswerNone},
		{"exit forged", Enforce, ctl(&dist.Exit{From: c.stale, To: c.own, Reason: kill}), Deny, "identity", true, AnswerNone},
		{"exit carrying a fun", Audit, ctl(&dist.Exit{From: c.eng, To: c.own, Reason: term.Export{Module: "os", Function: "cmd", Arity: 1}}), Deny, "no-code", false, AnswerNone},
		{"payload_exit own", Enforce, withPayload(&dist.PayloadExit{From: c.eng, To: c.own}, term.Atom("shutdown")), Allow, "link.exit", false, AnswerNone},
		{"payload_exit linked", Enforce, withPayload(&dist.PayloadExit{From: c.eng, To: c.linked}, term.Atom("shutdown")), Allow, "link.exit", false, AnswerNone},
		{"payload_exit production", Enforce, withPayload(&dist.PayloadExit{From: c.eng, To: c.prod}, kill), Deny, "link.exit", false, AnswerNone},
		{"payload_exit production audit", Audit, withPayload(&dist.PayloadExit{From: c.eng, To: c.prod}, kill), AllowWrite, "link.exit", false, AnswerNone},
		{"payload_exit forged", Audit, withPayload(&dist.PayloadExit{From: c.prod, To: c.own}, kill), Deny, "identity", true, AnswerNone},

		// EXIT2 and PAYLOAD_EXIT2: exit/2 kills; own processes only.
		{"exit2 own", Enforce, ctl(&dist.Exit2{From: c.eng, To: c.own, Reason: kill}), Allow, "session.own", false, AnswerNone},
		{"exit2 linked", Enforce, ctl(&dist.Exit2{From: c.eng, To: c.linked, Reason: kill}), Deny, "process.signal", false, AnswerNone},
		{"exit2 production", Enforce, ctl(&dist.Exit2{From: c.eng, To: c.prod, Reason: kill}), Deny, "process.signal", false, AnswerNone},
		{"exit2 production audit", Audit, ctl(&dist.Exit2{From: c.eng, To: c.prod, Reason: kill}), AllowWrite, "process.signal", false, AnswerNone},
		{"exit2 forged", Audit, ctl(&dist.Exit2{From: c.stale, To: c.own, Reason: kill}), Deny, "identity", true, AnswerNone},
		{"payload_exit2 own", Enforce, withPayload(&dist.PayloadExit2{From: c.eng, To: c.own}, kill), Allow, "session.own", false, AnswerNone},
		{"payload_exit2 production", Enforce, withPayload(&dist.PayloadExit2{From: c.eng, To: c.prod}, kill), Deny, "process.signal", false, AnswerNone},
		{"payload_exit2 production audit", Audit, withPayload(&dist.PayloadExit2{From: c.eng, To: c.prod}, kill), AllowWrite, "process.signal", false, AnswerNone},
		{"payload_exit2 forged", Enforce, withPayload(&dist.PayloadExit2{From: c.prod, To: c.prod}, kill), Deny, "identity", true, AnswerNone},

		// UNLINK_ID and UNLINK_ID_ACK: for the session's links only.
		{"unlink_id own", Enforce, ctl(&dist.UnlinkID{ID: 1, From: c.eng, To: c.own}), Allow, "unlink", false, AnswerNone},
		{"unlink_id linked", Enforce, ctl(&dist.UnlinkID{ID: 2, From: c.eng, To: c.linked}), Allow, "unlink", false, AnswerNone},
		{"unlink_id production", Enforce, ctl(&dist.UnlinkID{ID: 3, From: c.eng, To: c.prod}), Deny, "unlink", false, AnswerNone},
		{"unlink_id production audit", Audit, ctl(&dist.UnlinkID{ID: 3, From: c.eng, To: c.prod}), AllowWrite, "unlink", false, AnswerNone},
		{"unlink_id forged", Enforce, ctl(&dist.UnlinkID{ID: 4, From: c.stale, To: c.own}), Deny, "identity", true, AnswerNone},
		{"unlink_id_ack own", Enforce, ctl(&dist.UnlinkIDAck{ID: 1, From: c.eng, To: c.own}), Allow, "unlink", false, AnswerNone},
		{"unlink_id_ack linked", Enforce, ctl(&dist.UnlinkIDAck{ID: 1 << 63, From: c.eng, To: c.linked}), Allow, "unlink", false, AnswerNone},
		{"unlink_id_ack production", Enforce, ctl(&dist.UnlinkIDAck{ID: 5, From: c.eng, To: c.prod}), Deny, "unlink", false, AnswerNone},
		{"unlink_id_ack production audit", Audit, ctl(&dist.UnlinkIDAck{ID: 5, From: c.eng, To: c.prod}), AllowWrite, "unlink", false, AnswerNone},
		{"unlink_id_ack forged", Audit, ctl(&dist.UnlinkIDAck{ID: 6, From: c.prod, To: c.own}), Deny, "identity", true, AnswerNone},

		// GROUP_LEADER: erts does not check its origin; always a write.
		{"group_leader production", Enforce, ctl(&dist.GroupLeader{Leader: c.gl, To: c.prod}), Deny, "group-leader", false, AnswerNone},
		{"group_leader own", Enforce, ctl(&dist.GroupLeader{Leader: c.gl, To: c.own}), Deny, "group-leader", false, AnswerNone},
		{"group_leader audit", Audit, ctl(&dist.GroupLeader{Leader: c.gl, To: c.prod}), AllowWrite, "group-leader", false, AnswerNone},

		// MONITOR_P, DEMONITOR_P, MONITOR_P_EXIT, PAYLOAD_MONITOR_P_EXIT.
		{"monitor pid", Enforce, ctl(&dist.MonitorP{From: c.eng, To: c.prod, Ref: c.mon}), Allow, "monitor", false, AnswerNone},
		{"monitor name", Enforce, ctl(&dist.MonitorP{From: c.eng, To: term.Atom("rex"), Ref: c.mon}), Allow, "monitor", false, AnswerNone},
		{"monitor forged", Enforce, ctl(&dist.MonitorP{From: c.prod, To: term.Atom("rex"), Ref: c.mon}), Deny, "identity", true, AnswerNone},
		{"demonitor", Enforce, ctl(&dist.DemonitorP{From: c.eng, To: term.Atom("rex"), Ref: c.mon}), Allow, "monitor", false, AnswerNone},
		{"demonitor forged", Audit, ctl(&dist.DemonitorP{From: c.stale, To: term.Atom("rex"), Ref: c.mon}), Deny, "identity", true, AnswerNone},
		{"monitor_p_exit pid", Enforce, ctl(&dist.MonitorPExit{From: c.eng, To: c.prod, Ref: c.mon, Reason: term.Atom("normal")}), Allow, "monitor.down", false, AnswerNone},
		{"monitor_p_exit name", Enforce, ctl(&dist.MonitorPExit{From: term.Atom("my_server"), To: c.prod, Ref: c.mon, Reason: term.Atom("normal")}), Allow, "monitor.down", false, AnswerNone},
		{"monitor_p_exit forged", Enforce, ctl(&dist.MonitorPExit{From: c.prod, To: c.prod, Ref: c.mon, Reason: term.Atom("normal")}), Deny, "identity", true, AnswerNone},
		{"monitor_p_exit neither pid nor name", Enforce, ctl(&dist.MonitorPExit{From: term.Int(1), To: c.prod, Ref: c.mon, Reason: term.Atom("normal")}), Deny, "identity", true, AnswerNone},
		{"payload_monitor_p_exit pid", Enforce, withPayload(&dist.PayloadMonitorPExit{From: c.eng, To: c.prod, Ref: c.mon}, term.Atom("normal")), Allow, "monitor.down", false, AnswerNone},
		{"payload_monitor_p_exit name", Audit, withPayload(&dist.PayloadMonitorPExit{From: term.Atom("my_server"), To: c.prod, Ref: c.mon}, term.Atom("normal")), Allow, "monitor.down", false, AnswerNone},
		{"payload_monitor_p_exit forged", Audit, withPayload(&dist.PayloadMonitorPExit{From: c.stale, To: c.prod, Ref: c.mon}, term.Atom("normal")), Deny, "identity", true, AnswerNone},

		// ALIAS_SEND: a send to a production alias is a state change.
		{"alias_send", Enforce, withPayload(&dist.AliasSend{From: c.eng, Alias: c.mon}, term.Atom("hello")), Deny, "send.alias", false, AnswerNone},
		{"alias_send audit", Audit, withPayload(&dist.AliasSend{From: c.eng, Alias: c.mon}, term.Atom("hello")), AllowWrite, "send.alias", false, AnswerNone},
		{"alias_send forged", Audit, withPayload(&dist.AliasSend{From: c.prod, Alias: c.mon}, term.Atom("hello")), Deny, "identity", true, AnswerNone},

		// REG_SEND to net_kernel: only is_auth (net_adm:ping).
		{"net_kernel is_auth", Enforce, c.genCall("net_kernel", c.eng, c.tag(), term.Tuple{term.Atom("is_auth"), c.engNode}), Allow, "net_kernel.is_auth", false, AnswerNone},
		{"net_kernel is_auth for another process", Audit, c.genCall("net_kernel", c.prod, c.tag(), term.Tuple{term.Atom("is_auth"), c.engNode}), Deny, "identity", true, anyAnswer},
		{"net_kernel disconnect", Audit, c.genCall("net_kernel", c.eng, c.tag(), term.Tuple{term.Atom("disconnect"), c.prodNode}), Deny, "net_kernel", false, AnswerDown},
		{"net_kernel gen_call without a caller", Enforce, c.regSend("net_kernel", term.Tuple{term.Atom("$gen_call"), c.eng, term.Tuple{term.Atom("is_auth"), c.engNode}}), Deny, "net_kernel", false, AnswerNone},
		{"net_kernel gen_call from a name", Enforce, c.regSend("net_kernel", term.Tuple{term.Atom("$gen_call"), term.Tuple{term.Atom("rex"), c.tag()}, term.Tuple{term.Atom("is_auth"), c.engNode}}), Deny, "net_kernel", false, AnswerNone},
		{"net_kernel plain message", Enforce, c.regSend("net_kernel", term.Atom("hello")), Deny, "net_kernel", false, AnswerNone},

		// REG_SEND to rex: gen_call call/block_call with an allowed MFA,
		// {From, {call, ...}} and {From, features_request}.
		{"rex block_call allowed", Enforce, c.rexCall("block_call", "erlang", "node", term.Nil{}, c.gl), Allow, "net.identity", false, AnswerNone},
		{"rex call allowed", Enforce, c.rexCall("call", "erlang", "memory", term.Nil{}, c.gl), Allow, "system.stats", false, AnswerNone},
		{"rex call refused", Audit, c.rexCall("call", "erlang", "get_cookie", term.Nil{}, c.gl), Deny, "secrets", false, AnswerSend},
		{"rex call write audit", Audit, c.rexCall("block_call", "ets", "delete", term.MakeList(term.Atom("t")), c.gl), AllowWrite, "ets.write", false, AnswerNone},
		{"rex call group leader on production", Enforce, c.rexCall("call", "erlang", "node", term.Nil{}, c.prod), Deny, "identity", false, AnswerSend},
		{"rex call group leader is a name", Enforce, c.rexCall("call", "erlang", "node", term.Nil{}, term.Atom("user")), Allow, "net.identity", false, AnswerNone},
		{"rex call malformed", Enforce, c.genCall("rex", c.eng, c.tag(), term.Tuple{term.Atom("call"), term.String("os"), term.Atom("cmd"), term.Nil{}, c.gl}), Deny, "malformed", false, AnswerSend},
		{"rex call improper args", Enforce, c.rexCall("call", "erlang", "node", term.List{Elems: []term.Term{term.Int(1)}, Tail: term.Int(2)}, c.gl), Deny, "malformed", false, AnswerSend},
		{"rex gen_call other request", Enforce, c.genCall("rex", c.eng, c.tag(), term.Tuple{term.Atom("cast"), term.Atom("os"), term.Atom("cmd"), term.Nil{}, c.gl}), Deny, "rex", false, AnswerSend},
		{"rex gen_call forged caller", Audit, c.genCall("rex", c.prod, c.tag(), term.Tuple{term.Atom("call"), term.Atom("erlang"), term.Atom("node"), term.Nil{}, c.gl}), Deny, "identity", true, anyAnswer},
		{"rex features_request", Enforce, c.regSend("rex", term.Tuple{c.eng, term.Atom("features_request")}), Allow, "rex.features", false, AnswerNone},
		{"rex features_request forged", Enforce, c.regSend("rex", term.Tuple{c.prod, term.Atom("features_request")}), Deny, "identity", true, AnswerNone},
		{"rex from call allowed", Enforce, c.regSend("rex", term.Tuple{c.eng, term.Tuple{term.Atom("call"), term.Atom("erlang"), term.Atom("node"), term.Nil{}, c.gl}}), Allow, "net.identity", false, AnswerNone},
		{"rex from call refused", Enforce, c.regSend("rex", term.Tuple{c.eng, term.Tuple{term.Atom("call"), term.Atom("os"), term.Atom("cmd"), term.MakeList(term.String("id")), c.gl}}), Deny, "os.and.files", false, AnswerSend},
		{"rex sbcast", Audit, c.regSend("rex", term.Tuple{c.eng, term.Tuple{term.Atom("sbcast"), term.Atom("init"), term.Tuple{term.Atom("stop"), term.Atom("stop")}}}), Deny, "rex", false, AnswerSend},
		{"rex gen_cast", Audit, c.regSend("rex", term.Tuple{term.Atom("$gen_cast"), term.Tuple{term.Atom("cast"), term.Atom("os"), term.Atom("cmd"), term.Nil{}, c.gl}}), Deny, "rex", false, AnswerNone},
		{"rex plain message", Audit, c.regSend("rex", term.Atom("hello")), Deny, "rex", false, AnswerNone},

		// REG_SEND to any other name is a state change.
		{"registered send", Enforce, c.regSend("init", term.Tuple{term.Atom("stop"), term.Atom("stop")}), Deny, "send.registered", false, AnswerNone},
		{"registered send audit", Audit, c.regSend("init", term.Tuple{term.Atom("stop"), term.Atom("stop")}), AllowWrite, "send.registered", false, AnswerNone},
		{"global sync, audit mode", Audit, c.regSend("global_name_server", term.Tuple{term.Atom("init_connect"), term.Atom("x")}), Deny, "cluster.membership", false, AnswerNone},
		{"pg discover", Enforce, c.regSend("pg", term.Tuple{term.Atom("discover"), c.eng}), Deny, "cluster.membership", false, AnswerNone},
		{"registered gen_call alias tag", Enforce, c.genCall("application_controller", c.eng, c.tag(), term.Atom("which_applications")), Deny, "send.registered", false, AnswerDown},
		{"registered gen_call plain tag", Enforce, c.genCall("application_controller", c.eng, c.mon, term.Atom("which_applications")), Deny, "send.registered", false, AnswerDown},
		{"registered gen_call other tag", Enforce, c.genCall("application_controller", c.eng, term.Atom("tag"), term.Atom("which_applications")), Deny, "send.registered", false, AnswerNone},
		{"registered gen_call for a production caller", Enforce, c.genCall("application_controller", c.prod, c.tag(), term.Atom("which_applications")), Deny, "send.registered", false, AnswerNone},
		{"registered forged", Audit, c.regSendFrom(c.prod, "init", term.Atom("hello")), Deny, "identity", true, AnswerNone},

		// SPAWN_REQUEST through erpc:call.
		{"erpc allowed", Enforce, c.erpc("erlang", "node"), Allow, "net.identity", false, AnswerNone},
		{"erpc never", Audit, c.erpc("sys", "get_state", c.prod), Deny, "heavy.read", false, AnswerErpcExit},
		{"erpc write enforce", Enforce, c.erpc("ets", "delete", term.Atom("t")), Deny, "ets.write", false, AnswerErpcExit},
		{"erpc write audit", Audit, c.erpc("ets", "delete", term.Atom("t")), AllowWrite, "ets.write", false, AnswerNone},
		{"erpc args refused", Enforce, c.erpc("erlang", "system_info", term.Atom("procs")), Deny, "system.info", false, AnswerErpcExit},
		{"erpc args refused audit", Audit, c.erpc("erlang", "process_info", term.Int(3)), Deny, "process.info.default", false, AnswerErpcExit},
		{"erpc ensure_loaded other", Enforce, c.erpc("code", "ensure_loaded", term.Atom("lists")), Deny, "code.load", false, AnswerErpcExit},
		{"erpc ensure_loaded other audit", Audit, c.erpc("code", "ensure_loaded", term.Atom("lists")), AllowWrite, "code.load", false, AnswerNone},
		{"erpc default enforce", Enforce, c.erpc("lists", "seq", term.Int(1), term.Int(3)), Deny, "default", false, AnswerErpcExit},
		{"erpc default audit", Audit, c.erpc("lists", "seq", term.Int(1), term.Int(3)), AllowWrite, "default", false, AnswerNone},
		{"erpc secrets", Audit, c.erpc("os", "getenv"), Deny, "secrets", false, AnswerErpcExit},
		{"erpc remote shell", Audit, c.erpc("c", "pid", term.Int(0), term.Int(1), term.Int(0)), Deny, "remote-shell", false, AnswerErpcExit},
		{"erpc code wrapper", Audit, c.erpc("erpc", "call", c.prodNode, term.Atom("os"), term.Atom("cmd"), term.MakeList(term.String("id"))), Deny, "code-wrapper", false, AnswerErpcExit},
		{"erpc module_info of a wrapper", Enforce, c.erpc("rpc", "module_info", term.Atom("exports")), Allow, "module.info", false, AnswerNone},
		{"erpc messages placeholder", Enforce, c.erpc("erlang", "process_info", c.prod, term.Atom("messages")), Deny, "process.info", false, AnswerErpcReturn},
		{"erpc sys status placeholder", Audit, c.erpc("sys", "get_status", c.prod, term.Int(200)), Deny, "heavy.read", false, AnswerErpcReturn},
		{"erpc sys status of a name", Audit, c.erpc("sys", "get_status", term.Atom("rex")), Deny, "heavy.read", false, AnswerErpcExit},
		{"erpc malformed module", Audit, stringMod, Deny, "malformed", false, AnswerErpcExit},
		{"erpc improper args", Audit, improperArgs, Deny, "malformed", false, AnswerErpcExit},
		{"erpc arity mismatch", Audit, arity, Deny, "malformed", false, AnswerSpawnError},
		{"erpc group leader on production", Audit, badGL, Deny, "identity", false, AnswerErpcExit},
		{"erpc forged caller", Audit, forgedSpawn, Deny, "identity", true, anyAnswer},
		{"erpc forged caller carrying a fun", Audit, forgedCode, Deny, "identity", true, anyAnswer},
		{"registered forged carrying a fun", Audit, c.regSendFrom(c.prod, "init", term.Export{Module: "init", Function: "stop", Arity: 0}), Deny, "identity", true, AnswerNone},
		{"erpc fun argument", Audit, c.erpc("lists", "foreach", term.Export{Module: "init", Function: "stop", Arity: 1}, term.MakeList(term.Int(0))), Deny, "no-code", false, AnswerErpcExit},
		{"erpc grants result pids", Enforce, c.erpc("appmon_info", "start_link2", c.eng, c.eng, term.Nil{}), Allow, "observer.applications", false, AnswerNone},

		// SPAWN_REQUEST through erpc:cast and other erpc functions.
		{"erpc cast allowed", Enforce, c.cast("erlang", "node"), Allow, "net.identity", false, AnswerNone},
		{"erpc cast refused", Enforce, c.cast("os", "cmd", term.String("id")), Deny, "os.and.files", false, AnswerSpawnError},
		{"erpc other function", Audit, c.spawn("erpc", "execute_call", term.MakeList(term.Atom("monitor")), c.res, term.Atom("erlang"), term.Atom("node")), Deny, "code-wrapper", false, AnswerSpawnError},

		// Direct SPAWN_REQUEST (observer and etop collectors).
		{"spawn collector", Enforce, c.spawn("observer_backend", "etop_collect", term.MakeList(term.Atom("monitor"), term.Atom("link")), c.eng), Allow, "observer.collectors", false, AnswerNone},
		{"spawn load charts", Enforce, c.spawn("observer_backend", "fetch_stats", term.Nil{}, c.eng, term.Int(500)), Allow, "observer.load_charts", false, AnswerNone},
		{"spawn default enforce", Enforce, c.spawn("lists", "seq", term.Nil{}, term.Int(1), term.Int(2)), Deny, "default", false, AnswerSpawnError},
		{"spawn default audit", Audit, c.spawn("lists", "seq", term.Nil{}, term.Int(1), term.Int(2)), AllowWrite, "default", false, AnswerNone},
		{"spawn code wrapper", Audit, c.spawn("erlang", "apply", term.Nil{}, term.Atom("os"), term.Atom("getpid"), term.Nil{}), Deny, "code-wrapper", false, AnswerSpawnError},
		{"spawn improper options", Enforce, c.spawn("observer_backend", "procs_info", badOpts, c.eng), Deny, "spawn.options", false, AnswerSpawnError},
		{"spawn option refused", Audit, c.spawn("observer_backend", "procs_info", term.MakeList(term.Tuple{term.Atom("max_heap_size"), term.Int(1)}), c.eng), Deny, "spawn.options", false, AnswerSpawnError},
		{"spawn code in options", Audit, codeOpt, Deny, "no-code", false, AnswerSpawnError},

		// Operations engineers' tools never need: default deny.
		{"unlink obsolete", Audit, ctl(&dist.Unlink{From: c.eng, To: c.own}), Deny, "operation", false, AnswerNone},
		{"send_tt", Audit, withPayload(&dist.SendTT{Unused: term.EmptyAtom, To: c.own, Token: term.Atom("tok")}, term.Atom("hello")), Deny, "operation", false, AnswerNone},
		{"exit_tt", Audit, ctl(&dist.ExitTT{From: c.eng, To: c.own, Token: term.Atom("tok"), Reason: kill}), Deny, "operation", false, AnswerNone},
		{"reg_send_tt", Audit, withPayload(&dist.RegSendTT{From: c.eng, Unused: term.EmptyAtom, ToName: "rex", Token: term.Atom("tok")}, term.Atom("hello")), Deny, "operation", false, AnswerNone},
		{"exit2_tt", Audit, ctl(&dist.Exit2TT{From: c.eng, To: c.own, Token: term.Atom("tok"), Reason: kill}), Deny, "operation", false, AnswerNone},
		{"send_sender_tt", Audit, withPayload(&dist.SendSenderTT{From: c.eng, To: c.own, Token: term.Atom("tok")}, term.Atom("hello")), Deny, "operation", false, AnswerNone},
		{"payload_exit_tt", Audit, withPayload(&dist.PayloadExitTT{From: c.eng, To: c.own, Token: term.Atom("tok")}, kill), Deny, "operation", false, AnswerNone},
		{"payload_exit2_tt", Audit, withPayload(&dist.PayloadExit2TT{From: c.eng, To: c.own, Token: term.Atom("tok")}, kill), Deny, "operation", false, AnswerNone},
		{"spawn_request_tt", Audit, withPayload(&dist.SpawnRequestTT{SpawnRequest: *c.erpc("erlang", "node").Control.(*dist.SpawnRequest), Token: term.Atom("tok")}, c.erpc("erlang", "node").Payload), Deny, "operation", false, AnswerNone},
		{"spawn_reply", Audit, ctl(&dist.SpawnReply{ReqID: c.req, To: c.own, Result: c.eng}), Deny, "operation", false, AnswerNone},
		{"spawn_reply_tt", Audit, ctl(&dist.SpawnReplyTT{SpawnReply: dist.SpawnReply{ReqID: c.req, To: c.own, Result: c.eng}, Token: term.Atom("tok")}), Deny, "operation", false, AnswerNone},
		{"alias_send_tt", Audit, withPayload(&dist.AliasSendTT{From: c.eng, Alias: c.mon, Token: term.Atom("tok")}, term.Atom("hello")), Deny, "operation", false, AnswerNone},
		{"altact_sig_send", Audit, withPayload(&dist.AltactSigSend{Flags: term.Int(dist.AltactAlias), Sender: c.eng, To: c.mon}, term.Atom("hello")), Deny, "operation", false, AnswerNone},
	}
}

func TestRoute(t *testing.T) {
	prof, err := Load("readonly")
	if err != nil {
		t.Fatal(err)
	}
	c := testCast
	for _, tt := range routeCases(c) {
		t.Run(tt.name, func(t *testing.T) {
			s := c.session(t, prof, tt.mode)
			d := s.Evaluate(tt.msg)
			if d.Verdict != tt.verdict || d.Rule != tt.rule {
				t.Fatalf("Evaluate(%v) = %s by %q (%s), want %s by %q", tt.msg, d.Verdict, d.Rule, d.Reason, tt.verdict, tt.rule)
			}
			if d.Fatal != tt.fatal {
				t.Errorf("Fatal = %t, want %t", d.Fatal, tt.fatal)
			}
			if tt.answer != anyAnswer && d.Answer.Kind != tt.answer {
				t.Errorf("answer = %+v, want kind %d", d.Answer, tt.answer)
			}
			if d.Op != tt.msg.Control.Op().String() {
				t.Errorf("Op = %q, want %q", d.Op, tt.msg.Control.Op())
			}
			if d.Reason == "" && d.Verdict != Allow {
				t.Errorf("a %s decision by %s gives no reason", d.Verdict, d.Rule)
			}
			if d.Verdict.Forwarded() && (d.Answer.Kind != AnswerNone || d.Cleanup != nil) {
				t.Errorf("forwarded message also answered: %+v", d)
			}
			if d.Answer.Kind != AnswerNone && !d.Fatal && !s.isOwn(d.Answer.To) {
				t.Errorf("answer addressed to %v, not to the engineer", d.Answer.To)
			}
		})
	}
}

// TestRouteCoversEveryOperation keeps routeCases honest: every control
// operation dist decodes has a row.
func TestRouteCoversEveryOperation(t *testing.T) {
	seen := map[dist.Op]bool{}
	for _, tt := range routeCases(testCast) {
		seen[tt.msg.Control.Op()] = true
	}
	for op := range 256 {
		if _, err := dist.NewControl(dist.Op(op)); err != nil {
			continue
		}
		if !seen[dist.Op(op)] {
			t.Errorf("no routeCases row for %s", dist.Op(op))
		}
	}
}

// TestRouteRowsEncode checks that the rows are messages the relay could
// have decoded from the wire (FuzzEvaluate seeds itself with them).
func TestRouteRowsEncode(t *testing.T) {
	for _, tt := range routeCases(testCast) {
		if tt.name == "monitor_p_exit neither pid nor name" {
			continue // built by hand: dist never decodes it
		}
		body, err := dist.AppendMessage(nil, tt.msg)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		m, err := dist.DecodeFrame(body, nil)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !m.Equal(tt.msg) {
			t.Errorf("%s: round trip %v", tt.name, m)
		}
	}
}

func TestDefaultDenyNamesTheOperation(t *testing.T) {
	s := testCast.session(t, mustLoad(t, "readonly"), Audit)
	d := s.Evaluate(ctl(&dist.Unlink{From: testCast.eng, To: testCast.own}))
	if d.Verdict != Deny || d.What != "UNLINK" || d.Reason != "UNLINK is not an operation engineers' tools need" {
		t.Fatalf("UNLINK: %+v", d)
	}
}

func TestAnswers(t *testing.T) {
	c := testCast
	s := c.session(t, mustLoad(t, "readonly"), Enforce)

	// A refused erpc call whose tool needs a result gets a placeholder.
	d := s.Evaluate(c.erpc("erlang", "process_info", c.prod, term.Atom("messages")))
	want := term.Tuple{term.Atom("messages"), term.MakeList(term.String("hidden by beamgate (rule process.info)"))}
	if d.Answer.Kind != AnswerErpcReturn || !term.Equal(d.Answer.Value, want) || !term.Equal(d.Answer.ResRef, c.res) {
		t.Fatalf("messages placeholder: %+v", d.Answer)
	}
	d = s.Evaluate(c.erpc("sys", "get_status", c.prod))
	if st, ok := d.Answer.Value.(term.Tuple); d.Answer.Kind != AnswerErpcReturn || !ok || st[0] != term.Atom("status") || st[1] != c.prod {
		t.Fatalf("sys:get_status placeholder: %+v", d.Answer)
	}

	// erpc:cast and other erpc functions fail their spawn at once.
	d = s.Evaluate(c.cast("os", "cmd", term.String("id")))
	if d.Answer.Kind != AnswerSpawnError || d.Answer.Value != term.Atom("beamgate_denied") || d.Answer.To != c.eng || !term.Equal(d.Answer.ReqID, c.req) {
		t.Fatalf("erpc cast: %+v", d.Answer)
	}

	// A refused rex gen_call is answered {Tag, {badrpc, {'EXIT', Reason}}}.
	d = s.Evaluate(c.rexCall("call", "os", "cmd", term.MakeList(term.String("id")), c.gl))
	reply, ok := d.Answer.Value.(term.Tuple)
	if d.Answer.Kind != AnswerSend || d.Answer.To != c.eng || !ok || !term.Equal(reply[0], c.tag()) || !term.IsTagged(reply[1], "badrpc", 2) {
		t.Fatalf("rex gen_call: %+v", d.Answer)
	}
	denied := reply[1].(term.Tuple)[1].(term.Tuple)[1].(term.Tuple)
	if !term.Equal(denied[1], term.Tuple{term.Atom("os"), term.Atom("cmd"), term.Int(1)}) {
		t.Fatalf("rex gen_call reason: %s", term.Format(denied, 200))
	}
	// ... and a refused request that is not a call names rex.
	d = s.Evaluate(c.genCall("rex", c.eng, c.tag(), term.Atom("stop")))
	if reason := d.Answer.Value.(term.Tuple)[1].(term.Tuple)[1].(term.Tuple)[1]; d.Answer.Kind != AnswerSend || !term.Equal(reason.(term.Tuple)[1], term.Atom("rex")) {
		t.Fatalf("rex other request: %+v", d.Answer)
	}

	// {From, {call, ...}} to rex is answered {rex, {badrpc, ...}}.
	d = s.Evaluate(c.regSend("rex", term.Tuple{c.eng, term.Tuple{term.Atom("call"), term.Atom("os"), term.Atom("cmd"), term.Nil{}, c.gl}}))
	if d.Answer.Kind != AnswerSend || !term.IsTagged(d.Answer.Value, "rex", 2) || d.Answer.To != c.eng {
		t.Fatalf("rex {From, call}: %+v", d.Answer)
	}
	d = s.Evaluate(c.regSend("rex", term.Tuple{c.eng, term.Atom("stop")}))
	if d.Answer.Kind != AnswerSend || !term.IsTagged(d.Answer.Value, "rex", 2) {
		t.Fatalf("rex {From, other}: %+v", d.Answer)
	}

	// A refused gen:call to a name or pid gets a DOWN for its monitor.
	d = s.Evaluate(c.genCall("net_kernel", c.eng, c.tag(), term.Tuple{term.Atom("disconnect"), c.prodNode}))
	if d.Answer.Kind != AnswerDown || d.Answer.To != c.eng || !term.Equal(d.Answer.Ref, c.mon) || d.Answer.Proc != term.Atom("net_kernel") {
		t.Fatalf("net_kernel DOWN: %+v", d.Answer)
	}
	d = s.Evaluate(withPayload(&dist.SendSender{From: c.eng, To: c.prod}, term.Tuple{term.Atom("$gen_call"), term.Tuple{c.eng, c.mon}, term.Atom("x")}))
	if d.Answer.Kind != AnswerDown || d.Answer.Proc != c.prod || !term.Equal(d.Answer.Ref, c.mon) {
		t.Fatalf("pid DOWN: %+v", d.Answer)
	}
	// A gen:call from another process to a production pid is not the
	// engineer's to answer.
	d = s.Evaluate(withPayload(&dist.Send{To: c.prod}, term.Tuple{term.Atom("$gen_call"), term.Tuple{c.prod, c.mon}, term.Atom("x")}))
	if d.Verdict != Deny || d.Answer.Kind != AnswerNone {
		t.Fatalf("gen_call for a production caller: %+v", d)
	}
	// A tag that is neither [alias|Ref] nor a Ref has no monitor to fire.
	d = s.Evaluate(withPayload(&dist.Send{To: c.prod}, term.Tuple{term.Atom("$gen_call"), term.Tuple{c.eng, term.List{Elems: []term.Term{term.Atom("x")}, Tail: c.mon}}, term.Atom("x")}))
	if d.Verdict != Deny || d.Answer.Kind != AnswerNone {
		t.Fatalf("gen_call with a foreign tag: %+v", d)
	}
}

func mustLoad(t testing.TB, name string) *Profile {
	t.Helper()
	p, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDbgRelayRefusedWithAnError: dbg:do_relay (observer's Start Trace,
// ttb, dbg:n/1) gets a spawn error that makes spawn_link raise, at any
// arity; other refused spawns keep noconnection.
func TestDbgRelayRefusedWithAnError(t *testing.T) {
	c := testCast
	s := c.session(t, mustLoad(t, "readonly"), Enforce)
	for _, m := range []dist.Message{
		c.spawn("dbg", "do_relay", term.MakeList(term.Atom("link")), c.eng, term.Tuple{term.Atom("port"), term.Atom("f")}),
		c.spawn("dbg", "do_relay", term.MakeList(term.Atom("link")), c.eng, term.Atom("x"), term.Atom("session")),
	} {
		d := s.Evaluate(m)
		if d.Verdict != Deny || d.Answer.Kind != AnswerSpawnError || d.Answer.Value != term.Atom("beamgate_denied") {
			t.Errorf("dbg:do_relay: %+v", d)
		}
	}
	d := s.Evaluate(c.spawn("lists", "seq", term.Nil{}, term.Int(1), term.Int(2)))
	if d.Answer.Kind != AnswerSpawnError || d.Answer.Value != term.Atom("noconnection") {
		t.Errorf("other spawn: %+v", d.Answer)
	}
}

// TestElixirWrappers: Elixir's read-only wrappers get the rule of their
// Erlang counterpart; its secret-revealing and code-running ones are
// refused in every mode.
func TestElixirWrappers(t *testing.T) {
	c := testCast
	s := c.session(t, mustLoad(t, "readonly"), Audit)
	for _, tc := range []struct {
		m, f    string
		args    []term.Term
		verdict Verdict
		rule    string
	}{
		{"Elixir.Process", "info", []term.Term{c.prod, term.Atom("memory")}, Allow, "process.info"},
		{"Elixir.Process", "info", []term.Term{c.prod, term.MakeList(term.Atom("messages"))}, Deny, "process.info"},
		{"Elixir.Process", "info", []term.Term{c.prod}, Allow, "process.info.default"},
		{"Elixir.Application", "started_applications", nil, Allow, "system.stats"},
		{"Elixir.Node", "list", nil, Allow, "net.identity"},
		{"Elixir.Supervisor", "which_children", []term.Term{term.Atom("my_sup")}, Allow, "supervision.tree"},
		{"Elixir.MyApp.Worker", "__info__", []term.Term{term.Atom("functions")}, Allow, "module.info"},
		{"Elixir.System", "get_env", []term.Term{term.String("DATABASE_URL")}, Deny, "secrets"},
		{"Elixir.Application", "get_env", []term.Term{term.Atom("my_app"), term.Atom("secret_key")}, Deny, "secrets"},
		{"Elixir.Node", "get_cookie", nil, Deny, "secrets"},
		{"Elixir.GenServer", "call", []term.Term{term.Atom("my_server"), term.Atom("state")}, Deny, "code-wrapper"},
	} {
		d := s.Evaluate(c.rexCall("call", tc.m, tc.f, term.MakeList(tc.args...), c.gl))
		if d.Verdict != tc.verdict || d.Rule != tc.rule {
			t.Errorf("%s:%s/%d = %s by %s (%s), want %s by %s", tc.m, tc.f, len(tc.args), d.Verdict, d.Rule, d.Reason, tc.verdict, tc.rule)
		}
	}
}
