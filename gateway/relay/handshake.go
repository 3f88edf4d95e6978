package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"beamgate/cookies"
	"beamgate/gateway/dist/handshake"
	"beamgate/gateway/epmd"
)

// legs is the outcome of the double handshake.
type legs struct {
	engName       string
	engCreation   uint32
	prodCreation  uint32
	flags         handshake.Flags // what both peers now use
	pconn         net.Conn
	engineerFlags handshake.Flags
}

// refusal is a handshake failure with what the audit log should say.
type refusal struct {
	rule   string
	reason string
	err    error
}

func (e *refusal) Error() string { return e.reason }
func (e *refusal) Unwrap() error { return e.err }

func refuse(rule, reason string, err error) *refusal {
	return &refusal{rule: rule, reason: reason, err: err}
}

// handshake runs the engineer leg as acceptor and the production leg as
// initiator, interleaved as docs/wire.md#interleaving-the-two-handshakes describes: the
// engineer's name and creation go to production, production's to the
// engineer, flags are masked both ways, and production sees a challenge
// reply only after the engineer's digest verified against the engineer's
// gateway cookie.
func (s *session) handshake(ctx context.Context) (*legs, error) {
	lim := s.r.limits
	deadline := time.Now().Add(lim.HandshakeTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	_ = s.econn.SetDeadline(deadline)
	defer s.econn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { _ = s.econn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	acc := handshake.NewAcceptor(s.econn)
	name, err := acc.RecvName()
	if err != nil {
		switch {
		case errors.Is(err, handshake.ErrNameMe):
			_ = acc.SendStatus(handshake.Status{Code: handshake.StatusNotAllowed})
			return nil, refuse("handshake.name_me", "the engineer's node asked for a dynamic name; start it with --sname or --name", err)
		case errors.Is(err, handshake.ErrOldHandshake):
			return nil, refuse("handshake.version", "the engineer's node sent the pre-OTP-23 handshake; beamgate needs OTP 23 or later", err)
		}
		return nil, refuse("handshake.engineer", "reading the engineer's send_name: "+err.Error(), err)
	}
	s.engName = name.Name
	if name.Name == s.target.Name {
		_ = acc.SendStatus(handshake.Status{Code: handshake.StatusNotAllowed})
		return nil, refuse("handshake.name", "the engineer's node uses the production node's own name", nil)
	}
	engFlags, unknown := handshake.Mask(name.Flags)
	s.r.logUnknownFlags(s.target.Name, "engineer", unknown)

	attempts := cookies.NewAttempts(s.r.cfg.Cookies, s.target.Cluster)
	cookie, err := attempts.Next(ctx)
	if err != nil {
		_ = acc.SendStatus(handshake.Status{Code: handshake.StatusNotAllowed})
		// err comes from the cookie source, which never puts the cookie in
		// an error.
		return nil, refuse("cookie.unavailable", "the production cookie for cluster "+s.target.Cluster+" is unavailable: "+err.Error(), err)
	}

	pconn, ini, st, err := s.openProductionLeg(ctx, deadline, name, engFlags)
	ok := false
	defer func() {
		if !ok && pconn != nil {
			pconn.Close()
		}
	}()
	if err != nil {
		_ = acc.SendStatus(handshake.Status{Code: handshake.StatusNotAllowed})
		return nil, err
	}
	switch st.Code {
	case handshake.StatusOk, handshake.StatusOkSimultaneous:
		if err := acc.SendStatus(handshake.Status{Code: handshake.StatusOk}); err != nil {
			return nil, refuse("handshake.engineer", "sending status to the engineer: "+err.Error(), err)
		}
	default:
		_ = acc.SendStatus(handshake.Status{Code: st.Code})
		return nil, refuse("production.status", fmt.Sprintf("production answered %s to %s", st.Code, name.Name), nil)
	}

	pch, err := ini.RecvChallenge()
	if err != nil {
		return nil, refuse("production.handshake", "reading production's challenge: "+err.Error(), err)
	}
	if pch.Name != s.target.Name {
		return nil, refuse("production.name", fmt.Sprintf("production introduced itself as %q, not the configured %q", pch.Name, s.target.Name), nil)
	}
	prodFlags, unknown := handshake.Mask(pch.Flags)
	s.r.logUnknownFlags(s.target.Name, "production", unknown)

	engChallenge, err := handshake.NewChallenge()
	if err != nil {
		return nil, refuse("handshake.random", "no randomness for the challenge", err)
	}
	// Production's PUBLISHED goes to the engineer only: the engineer's
	// node (started visible, with -connect_all false, as the recipe says)
	// then lists production in nodes() and observer's Nodes menu, while
	// production, which never sees the bit, keeps the connection hidden
	// and out of its cluster. The policy refuses the global and pg
	// messages a visible node's cluster sync would send.
	toEngineer := prodFlags | pch.Flags&handshake.Published
	if err := acc.SendChallenge(handshake.Challenge{Flags: toEngineer, Challenge: engChallenge, Creation: pch.Creation, Name: s.target.Name}); err != nil {
		return nil, refuse("handshake.engineer", "sending the challenge to the engineer: "+err.Error(), err)
	}
	reply, err := acc.RecvChallengeReply()
	if err != nil {
		return nil, refuse("handshake.engineer", "reading the engineer's challenge reply: "+err.Error(), err)
	}
	engCookie := ""
	for _, c := range s.eng.Cookies {
		if handshake.CheckDigest(reply.Digest, engChallenge, c) {
			engCookie = c
			break
		}
	}
	if engCookie == "" {
		return nil, s.wrongCookie(ctx, reply.Digest, engChallenge, cookie)
	}

	pconn, err = s.proveToProduction(ctx, deadline, pconn, ini, pch, name, engFlags, cookie, attempts)
	if err != nil {
		return nil, err
	}
	if err := acc.SendAck(handshake.ChallengeAck{Digest: handshake.Digest(reply.Challenge, engCookie)}); err != nil {
		return nil, refuse("handshake.engineer", "sending the challenge ack to the engineer: "+err.Error(), err)
	}
	_ = pconn.SetDeadline(time.Time{})
	ok = true
	return &legs{
		engName: name.Name, engCreation: name.Creation, prodCreation: pch.Creation,
		flags: engFlags & prodFlags, pconn: pconn, engineerFlags: name.Flags,
	}, nil
}

func (s *session) dialProduction(ctx context.Context) (net.Conn, error) {
	eaddr, host := epmd.Addr(s.target.Dial)
	port, err := epmd.LookupPort(ctx, eaddr, alivePart(s.target.Name))
	if err != nil {
		return nil, fmt.Errorf("looking up %s in production's epmd at %s: %w", s.target.Name, eaddr, err)
	}
	c, err := s.r.cfg.Dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", s.target.Name, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return c, nil
}

// proveToProduction answers production's challenge with cookie, the
// first of attempts. When production rejects it, it tries the next cookies
// in the order of cookies.Attempts (the current one read afresh, then the
// previous one during a rotation), redoing the production leg for each.
// It returns the connection that succeeded.
func (s *session) proveToProduction(ctx context.Context, deadline time.Time, pconn net.Conn, ini *handshake.Initiator,
	pch handshake.Challenge, name handshake.Name, engFlags handshake.Flags, cookie string, attempts *cookies.Attempts) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			var err error
			if cookie, err = attempts.Next(ctx); err != nil {
				return pconn, refuse("production.cookie", "production refused the gateway's digest: the production cookie for cluster "+s.target.Cluster+" is not the one production uses", handshake.ErrCookieRejected)
			}
			pconn.Close()
			pconn, ini, err = s.redoProductionLeg(ctx, deadline, name, engFlags, &pch)
			if err != nil {
				return pconn, err
			}
		}
		chal, err := handshake.NewChallenge()
		if err != nil {
			return pconn, refuse("handshake.random", "no randomness for the challenge", err)
		}
		if err := ini.SendChallengeReply(handshake.ChallengeReply{Challenge: chal, Digest: handshake.Digest(pch.Challenge, cookie)}); err != nil {
			continue // production closed on us: try the next cookie
		}
		ack, err := ini.RecvAck()
		if err != nil {
			if ctx.Err() != nil {
				return pconn, refuse("production.handshake", "production did not answer the challenge reply in time", err)
			}
			continue
		}
		if !handshake.CheckDigest(ack.Digest, chal, cookie) {
			return pconn, refuse("production.digest", "production's challenge ack did not match the production cookie", nil)
		}
		return pconn, nil
	}
}

// openProductionLeg dials production and runs the handshake up to
// production's status, as the engineer's node: its name, creation and
// masked flags. An "alive" status is answered here: production already has
// a connection from a node of this name, and answering "true" would make
// production drop it (an engineer naming their node after a cluster peer
// could cut production's own mesh), so beamgate always answers "false" and
// refuses. The returned connection, when not nil, is the caller's to close.
func (s *session) openProductionLeg(ctx context.Context, deadline time.Time, name handshake.Name, engFlags handshake.Flags) (net.Conn, *handshake.Initiator, handshake.Status, error) {
	pconn, err := s.dialProduction(ctx)
	if err != nil {
		return nil, nil, handshake.Status{}, refuse("production.unreachable", err.Error(), err)
	}
	_ = pconn.SetDeadline(deadline)
	ini := handshake.NewInitiator(pconn)
	if err := ini.SendName(handshake.Name{Flags: engFlags, Creation: name.Creation, Name: name.Name}); err != nil {
		return pconn, nil, handshake.Status{}, refuse("production.handshake", "sending send_name to production: "+err.Error(), err)
	}
	st, err := ini.RecvStatus()
	if err != nil {
		return pconn, nil, handshake.Status{}, refuse("production.handshake", "reading production's status: "+err.Error(), err)
	}
	if st.Code == handshake.StatusAlive {
		_ = ini.SendStatusReply(false)
		return pconn, nil, st, refuse("production.alive", "production already has a connection from a node named "+name.Name+"; beamgate never lets a new connection replace it (pick another node name, or wait for the old session to time out)", nil)
	}
	return pconn, ini, st, nil
}

// redoProductionLeg dials production again for another cookie attempt and
// runs the handshake up to its challenge, which must come from the same
// node incarnation the engineer was already told about.
func (s *session) redoProductionLeg(ctx context.Context, deadline time.Time, name handshake.Name, engFlags handshake.Flags, pch *handshake.Challenge) (net.Conn, *handshake.Initiator, error) {
	pconn, ini, st, err := s.openProductionLeg(ctx, deadline, name, engFlags)
	if err != nil {
		return pconn, nil, err
	}
	fail := func(err error) (net.Conn, *handshake.Initiator, error) {
		return pconn, nil, refuse("production.handshake", "retrying production with another cookie: "+err.Error(), err)
	}
	if st.Code != handshake.StatusOk && st.Code != handshake.StatusOkSimultaneous {
		return fail(fmt.Errorf("production answered %s", st.Code))
	}
	ch, err := ini.RecvChallenge()
	if err != nil {
		return fail(err)
	}
	if ch.Name != pch.Name || ch.Creation != pch.Creation || ch.Flags != pch.Flags {
		return fail(errors.New("production restarted or changed its flags during the handshake"))
	}
	*pch = ch
	return pconn, ini, nil
}

// wrongCookie says which cookie the engineer's node proved, when it was
// not a current gateway cookie: the production cookie (which must leave
// the laptop), an expired gateway cookie, or something else. The cookies
// themselves never appear in the reason.
func (s *session) wrongCookie(ctx context.Context, digest [16]byte, challenge uint32, prodCookie string) *refusal {
	prod := []string{prodCookie}
	if prev, err := s.r.cfg.Cookies.PreviousProductionCookie(ctx, s.target.Cluster); err == nil && prev != "" {
		prod = append(prod, prev)
	}
	for _, c := range prod {
		if handshake.CheckDigest(digest, challenge, c) {
			return refuse("gateway-cookie.production", "the engineer's node used the production cookie of cluster "+s.target.Cluster+
				"; beamgate never accepts it from engineers: remove it from your machine and use your gateway cookie (ssh bastion cookie)", nil)
		}
	}
	for i, c := range s.eng.ExpiredCookies {
		if handshake.CheckDigest(digest, challenge, c) {
			return refuse("gateway-cookie.expired", fmt.Sprintf("the engineer's node used a gateway cookie that expired (%d cookie windows old): run ssh bastion cookie for the current one and restart your node with it", i+2), nil)
		}
	}
	return refuse("gateway-cookie", "the engineer's node did not prove the user's gateway cookie: run ssh bastion cookie and start your node with -setcookie (erl) or --cookie (iex) set to it", nil)
}
