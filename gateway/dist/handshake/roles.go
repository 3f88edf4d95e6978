package handshake

import "net"

// Initiator is the connecting side (A) of a handshake, step by step, for
// callers that interleave two handshakes (the relay). Each step reads or
// writes exactly one packet within the connection's deadline.
type Initiator struct{ *Conn }

// NewInitiator returns an Initiator over nc.
func NewInitiator(nc net.Conn) *Initiator { return &Initiator{NewConn(nc)} }

// SendName sends our send_name.
func (i *Initiator) SendName(m Name) error { return i.Send(&m) }

// RecvStatus reads the acceptor's status.
func (i *Initiator) RecvStatus() (Status, error) { return recv[Status](i.Conn) }

// SendStatusReply answers an "alive" status: true to continue.
func (i *Initiator) SendStatusReply(cont bool) error {
	return i.Send(&StatusReply{Continue: cont})
}

// RecvChallenge reads the acceptor's challenge. It does not check the
// name or the flags; Initiate does.
func (i *Initiator) RecvChallenge() (Challenge, error) { return recv[Challenge](i.Conn) }

// SendChallengeReply sends our challenge and the digest of theirs.
func (i *Initiator) SendChallengeReply(m ChallengeReply) error { return i.Send(&m) }

// RecvAck reads the acceptor's ack. It does not check the digest.
func (i *Initiator) RecvAck() (ChallengeAck, error) { return recv[ChallengeAck](i.Conn) }

// Acceptor is the accepting side (B) of a handshake, step by step.
type Acceptor struct{ *Conn }

// NewAcceptor returns an Acceptor over nc.
func NewAcceptor(nc net.Conn) *Acceptor { return &Acceptor{NewConn(nc)} }

// RecvName reads the initiator's send_name. ErrOldHandshake and ErrNameMe
// come back as Name.Decode returns them (for ErrNameMe with the message).
func (a *Acceptor) RecvName() (Name, error) { return recv[Name](a.Conn) }

// SendStatus sends our status.
func (a *Acceptor) SendStatus(m Status) error { return a.Send(&m) }

// RecvStatusReply reads the initiator's answer to an "alive" status.
func (a *Acceptor) RecvStatusReply() (bool, error) {
	m, err := recv[StatusReply](a.Conn)
	return m.Continue, err
}

// SendChallenge sends our challenge.
func (a *Acceptor) SendChallenge(m Challenge) error { return a.Send(&m) }

// RecvChallengeReply reads the initiator's reply. It does not check the
// digest.
func (a *Acceptor) RecvChallengeReply() (ChallengeReply, error) {
	return recv[ChallengeReply](a.Conn)
}

// SendAck sends our ack, completing the handshake.
func (a *Acceptor) SendAck(m ChallengeAck) error { return a.Send(&m) }

// recv reads the next packet as an M.
func recv[M any, PM interface {
	*M
	Message
}](c *Conn) (M, error) {
	var m M
	err := c.Recv(PM(&m))
	return m, err
}
