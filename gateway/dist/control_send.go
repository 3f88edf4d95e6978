package dist

import (
	"fmt"

	"beamgate/gateway/dist/term"
)

// Send is SEND {2, Unused, ToPid} + Message, used when SEND_SENDER was not
// negotiated. Unused is ” as sent by OTP and is kept as received.
type Send struct {
	Unused term.Term
	To     term.Pid
}

func (*Send) Op() Op              { return OpSend }
func (*Send) HasPayload() bool    { return true }
func (m *Send) Tuple() term.Tuple { return term.Tuple{term.Int(OpSend), orEmpty(m.Unused), m.To} }
func (m *Send) Decode(t term.Tuple) error {
	d, err := open(t, OpSend, 3)
	if err != nil {
		return err
	}
	m.Unused, m.To = t[1], d.pid(2)
	return d.done()
}

// SendTT is SEND_TT {12, Unused, ToPid, Token} + Message.
type SendTT struct {
	Unused term.Term
	To     term.Pid
	Token  term.Term
}

func (*SendTT) Op() Op           { return OpSendTT }
func (*SendTT) HasPayload() bool { return true }
func (m *SendTT) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpSendTT), orEmpty(m.Unused), m.To, m.Token}
}
func (m *SendTT) Decode(t term.Tuple) error {
	d, err := open(t, OpSendTT, 4)
	if err != nil {
		return err
	}
	m.Unused, m.To, m.Token = t[1], d.pid(2), t[3]
	return d.done()
}

// RegSend is REG_SEND {6, FromPid, Unused, ToName} + Message: a send to a
// registered name.
type RegSend struct {
	From   term.Pid
	Unused term.Term
	ToName term.Atom
}

func (*RegSend) Op() Op           { return OpRegSend }
func (*RegSend) HasPayload() bool { return true }
func (m *RegSend) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpRegSend), m.From, orEmpty(m.Unused), m.ToName}
}
func (m *RegSend) Decode(t term.Tuple) error {
	d, err := open(t, OpRegSend, 4)
	if err != nil {
		return err
	}
	m.From, m.Unused, m.ToName = d.pid(1), t[2], d.atom(3)
	return d.done()
}

// RegSendTT is REG_SEND_TT {16, FromPid, Unused, ToName, Token} + Message.
type RegSendTT struct {
	From   term.Pid
	Unused term.Term
	ToName term.Atom
	Token  term.Term
}

func (*RegSendTT) Op() Op           { return OpRegSendTT }
func (*RegSendTT) HasPayload() bool { return true }
func (m *RegSendTT) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpRegSendTT), m.From, orEmpty(m.Unused), m.ToName, m.Token}
}
func (m *RegSendTT) Decode(t term.Tuple) error {
	d, err := open(t, OpRegSendTT, 5)
	if err != nil {
		return err
	}
	m.From, m.Unused, m.ToName, m.Token = d.pid(1), t[2], d.atom(3), t[4]
	return d.done()
}

// SendSender is SEND_SENDER {22, FromPid, ToPid} + Message.
type SendSender struct {
	From, To term.Pid
}

func (*SendSender) Op() Op              { return OpSendSender }
func (*SendSender) HasPayload() bool    { return true }
func (m *SendSender) Tuple() term.Tuple { return term.Tuple{term.Int(OpSendSender), m.From, m.To} }
func (m *SendSender) Decode(t term.Tuple) error {
	d, err := open(t, OpSendSender, 3)
	if err != nil {
		return err
	}
	m.From, m.To = d.pid(1), d.pid(2)
	return d.done()
}

// SendSenderTT is SEND_SENDER_TT {23, FromPid, ToPid, Token} + Message.
type SendSenderTT struct {
	From, To term.Pid
	Token    term.Term
}

func (*SendSenderTT) Op() Op           { return OpSendSenderTT }
func (*SendSenderTT) HasPayload() bool { return true }
func (m *SendSenderTT) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpSendSenderTT), m.From, m.To, m.Token}
}
func (m *SendSenderTT) Decode(t term.Tuple) error {
	d, err := open(t, OpSendSenderTT, 4)
	if err != nil {
		return err
	}
	m.From, m.To, m.Token = d.pid(1), d.pid(2), t[3]
	return d.done()
}

// AliasSend is ALIAS_SEND {33, FromPid, AliasRef} + Message: a send to a
// process alias, such as a gen:call reply.
type AliasSend struct {
	From  term.Pid
	Alias term.Ref
}

func (*AliasSend) Op() Op              { return OpAliasSend }
func (*AliasSend) HasPayload() bool    { return true }
func (m *AliasSend) Tuple() term.Tuple { return term.Tuple{term.Int(OpAliasSend), m.From, m.Alias} }
func (m *AliasSend) Decode(t term.Tuple) error {
	d, err := open(t, OpAliasSend, 3)
	if err != nil {
		return err
	}
	m.From, m.Alias = d.pid(1), d.ref(2)
	return d.done()
}

// AliasSendTT is ALIAS_SEND_TT {34, FromPid, AliasRef, Token} + Message.
type AliasSendTT struct {
	From  term.Pid
	Alias term.Ref
	Token term.Term
}

func (*AliasSendTT) Op() Op           { return OpAliasSendTT }
func (*AliasSendTT) HasPayload() bool { return true }
func (m *AliasSendTT) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpAliasSendTT), m.From, m.Alias, m.Token}
}
func (m *AliasSendTT) Decode(t term.Tuple) error {
	d, err := open(t, OpAliasSendTT, 4)
	if err != nil {
		return err
	}
	m.From, m.Alias, m.Token = d.pid(1), d.ref(2), t[3]
	return d.done()
}

// ALTACT_SIG_SEND flag bits (erts dist.c).
const (
	AltactPrio  = 1  // priority message
	AltactToken = 2  // the tuple carries a seq-trace Token
	AltactAlias = 4  // To is an alias (a reference)
	AltactName  = 8  // To is a registered name (an atom)
	AltactExit  = 16 // the payload is an exit reason: an exit signal
)

// AltactSigSend is OTP 28's ALTACT_SIG_SEND {37, Flags, SenderPid, To}
// or {37, Flags, SenderPid, To, Token} + Message or exit reason. Flags may
// be any non-negative integer; unknown bits and extra tuple elements are
// accepted, as the protocol asks, and kept for re-encoding.
type AltactSigSend struct {
	Flags  term.Term // term.Int or term.Big, >= 0
	Sender term.Pid
	To     term.Term // pid, reference (AltactAlias) or atom (AltactName)
	Token  term.Term // nil unless Flags has AltactToken
	Extra  []term.Term
}

// Has reports whether flag bit (one of the Altact constants) is set.
func (m *AltactSigSend) Has(bit uint) bool {
	switch f := m.Flags.(type) {
	case term.Int:
		return f >= 0 && uint64(f)&uint64(bit) != 0
	case term.Big:
		if f.V == nil || f.V.Sign() < 0 {
			return false
		}
		for i := 0; bit>>i != 0; i++ {
			if bit>>i&1 != 0 && f.V.Bit(i) != 0 {
				return true
			}
		}
	}
	return false
}

func (*AltactSigSend) Op() Op           { return OpAltactSigSend }
func (*AltactSigSend) HasPayload() bool { return true }
func (m *AltactSigSend) Tuple() term.Tuple {
	t := term.Tuple{term.Int(OpAltactSigSend), m.Flags, m.Sender, m.To}
	if m.Has(AltactToken) {
		t = append(t, m.Token)
	}
	return append(t, m.Extra...)
}
func (m *AltactSigSend) Decode(t term.Tuple) error {
	if len(t) < 4 {
		return &ControlError{Op: OpAltactSigSend, Reason: fmt.Sprintf("arity %d, want at least 4", len(t))}
	}
	d, err := open(t, OpAltactSigSend, len(t))
	if err != nil {
		return err
	}
	*m = AltactSigSend{Flags: t[1], Sender: d.pid(2), To: t[3]}
	switch f := t[1].(type) {
	case term.Int:
		if f < 0 {
			d.fail(1, "non-negative integer")
		}
	case term.Big:
		if f.V == nil || f.V.Sign() < 0 {
			d.fail(1, "non-negative integer")
		}
	default:
		d.fail(1, "non-negative integer")
	}
	if err := d.done(); err != nil {
		return err
	}
	switch {
	case m.Has(AltactAlias):
		d.ref(3)
	case m.Has(AltactName):
		d.atom(3)
	default:
		d.pid(3)
	}
	rest := t[4:]
	if m.Has(AltactToken) {
		if len(rest) == 0 {
			return &ControlError{Op: OpAltactSigSend, Reason: "TOKEN flag set but no token"}
		}
		m.Token, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		m.Extra = rest
	}
	return d.done()
}

// orEmpty returns t, or the atom ” that OTP puts in unused slots when t is
// nil.
func orEmpty(t term.Term) term.Term {
	if t == nil {
		return term.EmptyAtom
	}
	return t
}
