// Package handshake owns the Erlang distribution handshake (v6, OTP 23+)
// as beamgate speaks it on both legs: the capability flags and the mask
// beamgate relays, one type per handshake message with Decode/Encode,
// 2-byte packet framing, the MD5 cookie digest, the initiator and acceptor
// roles step by step (for the relay, which interleaves two handshakes) and
// whole (Initiate, Accept).
//
// Reference: docs/wire.md#handshake (#capability-flags,
// #interleaving-the-two-handshakes), and
// erts/doc/guides/erl_dist_protocol.md. Peers are untrusted: every length
// is bounded before use, every handshake is bounded by a deadline, and no
// error or String output carries cookie text. After a successful
// handshake the connection switches to 4-byte framing, which is not this
// package's business.
package handshake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// DefaultTimeout bounds a whole handshake when ctx has no deadline.
const DefaultTimeout = 10 * time.Second

// Result describes a completed handshake.
type Result struct {
	PeerName     string
	PeerCreation uint32
	PeerFlags    Flags // as the peer announced them
	Flags        Flags // negotiated: ours & peer's, both expanded
}

// InitiatorConfig configures Initiate.
type InitiatorConfig struct {
	Name     string // our node name, alive@host
	Creation uint32
	Flags    Flags  // must not contain NameMe
	Cookie   string // the peer's cookie; never logged
	PeerName string // the node we dialed; the challenge must name it exactly

	// OnAlive decides the answer to an "alive" status (the peer already
	// has a connection from our name): true claims it is dead and
	// continues. nil answers false and fails with *RefusedError.
	OnAlive func() bool

	challenge func() (uint32, error) // tests; nil = NewChallenge
}

// AcceptorConfig configures Accept.
type AcceptorConfig struct {
	Name     string // our node name, as the peer dialed it
	Creation uint32
	Flags    Flags
	// Cookie returns the cookie expected from the named peer, or false to
	// refuse it (not_allowed).
	Cookie func(peer string) (string, bool)

	challenge func() (uint32, error) // tests; nil = NewChallenge
}

// Initiate runs the initiator side of a handshake over conn. It is bounded
// by ctx's deadline, or DefaultTimeout if ctx has none, and by ctx's
// cancellation. On success the deadline is cleared and conn is ready for
// 4-byte framing; on error the caller must close conn.
func Initiate(ctx context.Context, conn net.Conn, cfg InitiatorConfig) (res *Result, err error) {
	done, err := bound(ctx, conn, cfg.check)
	if err != nil {
		return nil, err
	}
	defer done(&res, &err)

	ini := NewInitiator(conn)
	if err := ini.SendName(Name{Flags: cfg.Flags, Creation: cfg.Creation, Name: cfg.Name}); err != nil {
		return nil, err
	}
	st, err := ini.RecvStatus()
	if err != nil {
		return nil, err
	}
	switch st.Code {
	case StatusOk, StatusOkSimultaneous:
	case StatusNok, StatusNotAllowed:
		return nil, &RefusedError{Status: st.Code}
	case StatusAlive:
		cont := cfg.OnAlive != nil && cfg.OnAlive()
		if err := ini.SendStatusReply(cont); err != nil {
			return nil, err
		}
		if !cont {
			return nil, &RefusedError{Status: st.Code}
		}
	default: // named: we never ask for NAME_ME
		return nil, &FormatError{Msg: "status", Reason: fmt.Sprintf("unexpected %s status", st.Code)}
	}

	ch, err := ini.RecvChallenge()
	if err != nil {
		return nil, err
	}
	if ch.Name != cfg.PeerName {
		return nil, fmt.Errorf("%w: dialed %q, peer calls itself %q", ErrNameMismatch, cfg.PeerName, ch.Name)
	}
	if missing := Mandatory25 &^ ch.Flags.Expand(); missing != 0 {
		return nil, &MissingFlagsError{Peer: ch.Name, Missing: missing}
	}
	ours, err := cfg.newChallenge()
	if err != nil {
		return nil, err
	}
	reply := ChallengeReply{Challenge: ours, Digest: Digest(ch.Challenge, cfg.Cookie)}
	if err := ini.SendChallengeReply(reply); err != nil {
		return nil, err
	}
	ack, err := ini.RecvAck()
	if err != nil {
		if closedByPeer(err) {
			return nil, fmt.Errorf("%w: %w", ErrCookieRejected, err)
		}
		return nil, err
	}
	if !CheckDigest(ack.Digest, ours, cfg.Cookie) {
		return nil, fmt.Errorf("%w: ack from %q", ErrBadDigest, ch.Name)
	}
	return &Result{
		PeerName:     ch.Name,
		PeerCreation: ch.Creation,
		PeerFlags:    ch.Flags,
		Flags:        cfg.Flags.Expand() & ch.Flags.Expand(),
	}, nil
}

// Accept runs the acceptor side of a handshake over conn, bounded like
// Initiate. A peer sending the old 'n' name, asking for a dynamic name,
// lacking Mandatory25 flags or having no cookie gets not_allowed. A wrong
// digest yields ErrBadDigest without sending the ack, as OTP does. On
// error the caller must close conn.
func Accept(ctx context.Context, conn net.Conn, cfg AcceptorConfig) (res *Result, err error) {
	done, err := bound(ctx, conn, cfg.check)
	if err != nil {
		return nil, err
	}
	defer done(&res, &err)

	acc := NewAcceptor(conn)
	refuse := func(err error) (*Result, error) {
		// Best effort: tell the peer before the caller closes.
		_ = acc.SendStatus(Status{Code: StatusNotAllowed})
		return nil, err
	}
	name, err := acc.RecvName()
	switch {
	case errors.Is(err, ErrOldHandshake), errors.Is(err, ErrNameMe):
		return refuse(err)
	case err != nil:
		return nil, err
	}
	if missing := Mandatory25 &^ name.Flags.Expand(); missing != 0 {
		return refuse(&MissingFlagsError{Peer: name.Name, Missing: missing})
	}
	cookie, ok := cfg.Cookie(name.Name)
	if !ok {
		return refuse(fmt.Errorf("%w %q", ErrNoCookie, name.Name))
	}
	if err := acc.SendStatus(Status{Code: StatusOk}); err != nil {
		return nil, err
	}
	ours, err := cfg.newChallenge()
	if err != nil {
		return nil, err
	}
	ch := Challenge{Flags: cfg.Flags, Challenge: ours, Creation: cfg.Creation, Name: cfg.Name}
	if err := acc.SendChallenge(ch); err != nil {
		return nil, err
	}
	reply, err := acc.RecvChallengeReply()
	if err != nil {
		return nil, err
	}
	if !CheckDigest(reply.Digest, ours, cookie) {
		return nil, fmt.Errorf("%w: reply from %q", ErrBadDigest, name.Name)
	}
	if err := acc.SendAck(ChallengeAck{Digest: Digest(reply.Challenge, cookie)}); err != nil {
		return nil, err
	}
	return &Result{
		PeerName:     name.Name,
		PeerCreation: name.Creation,
		PeerFlags:    name.Flags,
		Flags:        cfg.Flags.Expand() & name.Flags.Expand(),
	}, nil
}

func (cfg *InitiatorConfig) check() error {
	if err := checkNodeName("InitiatorConfig.Name", cfg.Name); err != nil {
		return err
	}
	if err := checkNodeName("InitiatorConfig.PeerName", cfg.PeerName); err != nil {
		return err
	}
	switch {
	case cfg.Flags&NameMe != 0:
		return errors.New("handshake: InitiatorConfig.Flags must not ask for NAME_ME")
	case cfg.Cookie == "":
		return errors.New("handshake: InitiatorConfig.Cookie is empty")
	}
	return nil
}

func (cfg *AcceptorConfig) check() error {
	if err := checkNodeName("AcceptorConfig.Name", cfg.Name); err != nil {
		return err
	}
	if cfg.Cookie == nil {
		return errors.New("handshake: AcceptorConfig.Cookie is nil")
	}
	return nil
}

func (cfg *InitiatorConfig) newChallenge() (uint32, error) { return newChallenge(cfg.challenge) }
func (cfg *AcceptorConfig) newChallenge() (uint32, error)  { return newChallenge(cfg.challenge) }

func newChallenge(f func() (uint32, error)) (uint32, error) {
	if f == nil {
		return NewChallenge()
	}
	return f()
}

// bound checks the configuration, sets conn's deadline from ctx (or DefaultTimeout) and makes ctx's
// cancellation abort pending I/O. The returned done, deferred with the
// handshake's results, clears the deadline on success, turns an error
// caused by ctx into one that says so, and drops the result on error.
func bound(ctx context.Context, conn net.Conn, check func() error) (done func(**Result, *error), err error) {
	if err := check(); err != nil {
		return nil, err
	}
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	finish := func(err error) error {
		stopped := stop()
		cause := context.Cause(ctx)
		switch {
		case err == nil && stopped:
			if err := conn.SetDeadline(time.Time{}); err != nil {
				return fmt.Errorf("handshake: clearing deadline: %w", err)
			}
			return nil
		case err == nil:
			// ctx ended as we finished; its AfterFunc may have broken conn.
			return fmt.Errorf("handshake: %w", cause)
		case cause != nil:
			return fmt.Errorf("%w (%w)", err, cause)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Our deadline (ctx's, or DefaultTimeout) may fire before ctx's.
			return fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
		}
		return err
	}
	return func(res **Result, err *error) {
		if *err = finish(*err); *err != nil {
			*res = nil
		}
	}, nil
}

// closedByPeer reports whether err means the peer closed the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET)
}
