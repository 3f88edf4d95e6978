package dist

import "beamgate/gateway/dist/term"

// Exit is EXIT {3, FromPid, ToPid, Reason}: a link broke (non-payload form).
type Exit struct {
	From, To term.Pid
	Reason   term.Term
}

func (*Exit) Op() Op              { return OpExit }
func (*Exit) HasPayload() bool    { return false }
func (m *Exit) Tuple() term.Tuple { return term.Tuple{term.Int(OpExit), m.From, m.To, m.Reason} }
func (m *Exit) Decode(t term.Tuple) error {
	d, err := open(t, OpExit, 4)
	if err != nil {
		return err
	}
	m.From, m.To, m.Reason = d.pid(1), d.pid(2), t[3]
	return d.done()
}

// ExitTT is EXIT_TT {13, FromPid, ToPid, Token, Reason}.
type ExitTT struct {
	From, To      term.Pid
	Token, Reason term.Term
}

func (*ExitTT) Op() Op           { return OpExitTT }
func (*ExitTT) HasPayload() bool { return false }
func (m *ExitTT) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpExitTT), m.From, m.To, m.Token, m.Reason}
}
func (m *ExitTT) Decode(t term.Tuple) error {
	d, err := open(t, OpExitTT, 5)
	if err != nil {
		return err
	}
	m.From, m.To, m.Token, m.Reason = d.pid(1), d.pid(2), t[3], t[4]
	return d.done()
}

// Exit2 is EXIT2 {8, FromPid, ToPid, Reason}: exit/2 (non-payload form).
type Exit2 struct {
	From, To term.Pid
	Reason   term.Term
}

func (*Exit2) Op() Op              { return OpExit2 }
func (*Exit2) HasPayload() bool    { return false }
func (m *Exit2) Tuple() term.Tuple { return term.Tuple{term.Int(OpExit2), m.From, m.To, m.Reason} }
func (m *Exit2) Decode(t term.Tuple) error {
	d, err := open(t, OpExit2, 4)
	if err != nil {
		return err
	}
	m.From, m.To, m.Reason = d.pid(1), d.pid(2), t[3]
	return d.done()
}

// Exit2TT is EXIT2_TT {18, FromPid, ToPid, Token, Reason}.
type Exit2TT struct {
	From, To      term.Pid
	Token, Reason term.Term
}

func (*Exit2TT) Op() Op           { return OpExit2TT }
func (*Exit2TT) HasPayload() bool { return false }
func (m *Exit2TT) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpExit2TT), m.From, m.To, m.Token, m.Reason}
}
func (m *Exit2TT) Decode(t term.Tuple) error {
	d, err := open(t, OpExit2TT, 5)
	if err != nil {
		return err
	}
	m.From, m.To, m.Token, m.Reason = d.pid(1), d.pid(2), t[3], t[4]
	return d.done()
}

// PayloadExit is PAYLOAD_EXIT {24, FromPid, ToPid} + Reason.
type PayloadExit struct {
	From, To term.Pid
}

func (*PayloadExit) Op() Op              { return OpPayloadExit }
func (*PayloadExit) HasPayload() bool    { return true }
func (m *PayloadExit) Tuple() term.Tuple { return term.Tuple{term.Int(OpPayloadExit), m.From, m.To} }
func (m *PayloadExit) Decode(t term.Tuple) error {
	d, err := open(t, OpPayloadExit, 3)
	if err != nil {
		return err
	}
	m.From, m.To = d.pid(1), d.pid(2)
	return d.done()
}

// PayloadExitTT is PAYLOAD_EXIT_TT {25, FromPid, ToPid, Token} + Reason.
type PayloadExitTT struct {
	From, To term.Pid
	Token    term.Term
}

func (*PayloadExitTT) Op() Op           { return OpPayloadExitTT }
func (*PayloadExitTT) HasPayload() bool { return true }
func (m *PayloadExitTT) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpPayloadExitTT), m.From, m.To, m.Token}
}
func (m *PayloadExitTT) Decode(t term.Tuple) error {
	d, err := open(t, OpPayloadExitTT, 4)
	if err != nil {
		return err
	}
	m.From, m.To, m.Token = d.pid(1), d.pid(2), t[3]
	return d.done()
}

// PayloadExit2 is PAYLOAD_EXIT2 {26, FromPid, ToPid} + Reason: exit/2.
type PayloadExit2 struct {
	From, To term.Pid
}

func (*PayloadExit2) Op() Op              { return OpPayloadExit2 }
func (*PayloadExit2) HasPayload() bool    { return true }
func (m *PayloadExit2) Tuple() term.Tuple { return term.Tuple{term.Int(OpPayloadExit2), m.From, m.To} }
func (m *PayloadExit2) Decode(t term.Tuple) error {
	d, err := open(t, OpPayloadExit2, 3)
	if err != nil {
		return err
	}
	m.From, m.To = d.pid(1), d.pid(2)
	return d.done()
}

// PayloadExit2TT is PAYLOAD_EXIT2_TT {27, FromPid, ToPid, Token} + Reason.
type PayloadExit2TT struct {
	From, To term.Pid
	Token    term.Term
}

func (*PayloadExit2TT) Op() Op           { return OpPayloadExit2TT }
func (*PayloadExit2TT) HasPayload() bool { return true }
func (m *PayloadExit2TT) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpPayloadExit2TT), m.From, m.To, m.Token}
}
func (m *PayloadExit2TT) Decode(t term.Tuple) error {
	d, err := open(t, OpPayloadExit2TT, 4)
	if err != nil {
		return err
	}
	m.From, m.To, m.Token = d.pid(1), d.pid(2), t[3]
	return d.done()
}
