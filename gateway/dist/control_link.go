package dist

import "beamgate/gateway/dist/term"

// Link is LINK {1, FromPid, ToPid}.
type Link struct {
	From, To term.Pid
}

func (*Link) Op() Op              { return OpLink }
func (*Link) HasPayload() bool    { return false }
func (m *Link) Tuple() term.Tuple { return term.Tuple{term.Int(OpLink), m.From, m.To} }
func (m *Link) Decode(t term.Tuple) error {
	d, err := open(t, OpLink, 3)
	if err != nil {
		return err
	}
	m.From, m.To = d.pid(1), d.pid(2)
	return d.done()
}

// Unlink is the obsolete UNLINK {4, FromPid, ToPid}. It is decoded so that
// policy can refuse it by type; OTP 26+ kills a connection that sends it.
type Unlink struct {
	From, To term.Pid
}

func (*Unlink) Op() Op              { return OpUnlink }
func (*Unlink) HasPayload() bool    { return false }
func (m *Unlink) Tuple() term.Tuple { return term.Tuple{term.Int(OpUnlink), m.From, m.To} }
func (m *Unlink) Decode(t term.Tuple) error {
	d, err := open(t, OpUnlink, 3)
	if err != nil {
		return err
	}
	m.From, m.To = d.pid(1), d.pid(2)
	return d.done()
}

// GroupLeader is GROUP_LEADER {7, LeaderPid, ToPid}: set the group leader
// of To. erts does not check where it comes from.
type GroupLeader struct {
	Leader, To term.Pid
}

func (*GroupLeader) Op() Op              { return OpGroupLeader }
func (*GroupLeader) HasPayload() bool    { return false }
func (m *GroupLeader) Tuple() term.Tuple { return term.Tuple{term.Int(OpGroupLeader), m.Leader, m.To} }
func (m *GroupLeader) Decode(t term.Tuple) error {
	d, err := open(t, OpGroupLeader, 3)
	if err != nil {
		return err
	}
	m.Leader, m.To = d.pid(1), d.pid(2)
	return d.done()
}

// UnlinkID is UNLINK_ID {35, Id, FromPid, ToPid}, Id in 1..2^64-1.
type UnlinkID struct {
	ID       uint64
	From, To term.Pid
}

func (*UnlinkID) Op() Op           { return OpUnlinkID }
func (*UnlinkID) HasPayload() bool { return false }
func (m *UnlinkID) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpUnlinkID), uint64Term(m.ID), m.From, m.To}
}
func (m *UnlinkID) Decode(t term.Tuple) error {
	d, err := open(t, OpUnlinkID, 4)
	if err != nil {
		return err
	}
	m.ID, m.From, m.To = d.id(1), d.pid(2), d.pid(3)
	return d.done()
}

// UnlinkIDAck is UNLINK_ID_ACK {36, Id, FromPid, ToPid}.
type UnlinkIDAck struct {
	ID       uint64
	From, To term.Pid
}

func (*UnlinkIDAck) Op() Op           { return OpUnlinkIDAck }
func (*UnlinkIDAck) HasPayload() bool { return false }
func (m *UnlinkIDAck) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpUnlinkIDAck), uint64Term(m.ID), m.From, m.To}
}
func (m *UnlinkIDAck) Decode(t term.Tuple) error {
	d, err := open(t, OpUnlinkIDAck, 4)
	if err != nil {
		return err
	}
	m.ID, m.From, m.To = d.id(1), d.pid(2), d.pid(3)
	return d.done()
}
