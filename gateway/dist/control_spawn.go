package dist

import "beamgate/gateway/dist/term"

// SpawnRequest is SPAWN_REQUEST {29, ReqId, FromPid, GroupLeader,
// {Module, Function, Arity}, OptList} + ArgList. erpc:call sends
// {erpc, execute_call, 4} with [monitor] and args [ResRef, M, F, A].
type SpawnRequest struct {
	ReqID       term.Term // a reference
	From        term.Pid
	GroupLeader term.Pid
	Module      term.Atom
	Function    term.Atom
	Arity       int
	Opts        term.Term // the OptList as sent; erts answers badopt to bad ones
}

func (*SpawnRequest) Op() Op           { return OpSpawnRequest }
func (*SpawnRequest) HasPayload() bool { return true }
func (m *SpawnRequest) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpSpawnRequest), m.ReqID, m.From, m.GroupLeader,
		term.Tuple{m.Module, m.Function, term.Int(m.Arity)}, m.Opts}
}
func (m *SpawnRequest) Decode(t term.Tuple) error {
	d, err := open(t, OpSpawnRequest, 6)
	if err != nil {
		return err
	}
	m.decode(d)
	return d.done()
}

// decode reads the elements SPAWN_REQUEST and SPAWN_REQUEST_TT share.
func (m *SpawnRequest) decode(d *elems) {
	m.ReqID, m.From, m.GroupLeader = d.refTerm(1), d.pid(2), d.pid(3)
	m.Opts = d.t[5]
	mfa, ok := d.t[4].(term.Tuple)
	if !ok || len(mfa) != 3 {
		d.fail(4, "{Module, Function, Arity}")
		return
	}
	mod, mok := mfa[0].(term.Atom)
	fun, fok := mfa[1].(term.Atom)
	a, aok := mfa[2].(term.Int)
	if !mok || !fok || !aok || a < 0 || a > 255 {
		d.fail(4, "{atom, atom, 0..255}")
		return
	}
	m.Module, m.Function, m.Arity = mod, fun, int(a)
}

// SpawnRequestTT is SPAWN_REQUEST_TT {30, ReqId, FromPid, GroupLeader,
// {Module, Function, Arity}, OptList, Token} + ArgList.
type SpawnRequestTT struct {
	SpawnRequest
	Token term.Term
}

func (*SpawnRequestTT) Op() Op { return OpSpawnRequestTT }
func (m *SpawnRequestTT) Tuple() term.Tuple {
	t := m.SpawnRequest.Tuple()
	t[0] = term.Int(OpSpawnRequestTT)
	return append(t, m.Token)
}
func (m *SpawnRequestTT) Decode(t term.Tuple) error {
	d, err := open(t, OpSpawnRequestTT, 7)
	if err != nil {
		return err
	}
	m.decode(d)
	m.Token = t[6]
	return d.done()
}

// SPAWN_REPLY flag bits.
const (
	SpawnReplyLink    = 1 // a link was set up
	SpawnReplyMonitor = 2 // a monitor was set up
	maxSpawnFlags     = 1<<27 - 1
)

// SpawnReply is SPAWN_REPLY {31, ReqId, ToPid, Flags, Result}: Result is
// the new process's pid, or an error atom.
type SpawnReply struct {
	ReqID  term.Term // a reference
	To     term.Pid
	Flags  int
	Result term.Term // pid or atom
}

func (*SpawnReply) Op() Op           { return OpSpawnReply }
func (*SpawnReply) HasPayload() bool { return false }
func (m *SpawnReply) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpSpawnReply), m.ReqID, m.To, term.Int(m.Flags), m.Result}
}
func (m *SpawnReply) Decode(t term.Tuple) error {
	d, err := open(t, OpSpawnReply, 5)
	if err != nil {
		return err
	}
	m.decode(d)
	return d.done()
}

// decode reads the elements SPAWN_REPLY and SPAWN_REPLY_TT share.
func (m *SpawnReply) decode(d *elems) {
	m.ReqID, m.To, m.Flags, m.Result = d.refTerm(1), d.pid(2), int(d.small(3, 0, maxSpawnFlags)), d.proc(4)
}

// SpawnReplyTT is SPAWN_REPLY_TT {32, ReqId, ToPid, Flags, Result, Token}.
type SpawnReplyTT struct {
	SpawnReply
	Token term.Term
}

func (*SpawnReplyTT) Op() Op { return OpSpawnReplyTT }
func (m *SpawnReplyTT) Tuple() term.Tuple {
	t := m.SpawnReply.Tuple()
	t[0] = term.Int(OpSpawnReplyTT)
	return append(t, m.Token)
}
func (m *SpawnReplyTT) Decode(t term.Tuple) error {
	d, err := open(t, OpSpawnReplyTT, 6)
	if err != nil {
		return err
	}
	m.decode(d)
	m.Token = t[5]
	return d.done()
}
