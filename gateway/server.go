// Package gateway is beamgate's SSH front door: its configuration, the SSH
// server engineers log in to with keys or certificates, and the brokering
// of their direct-tcpip channels into the epmd face and the distribution
// relay. A session channel is not a shell: it prints the engineer's
// banner, cookie or node table, or runs one of the read-only text views
// (top, ets, apps, info, stats, binaries) against a node the engineer may
// reach, and nothing else runs.
package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/config"
	"beamgate/gateway/relay"
	"beamgate/gateway/views"
	"beamgate/policy"

	"github.com/gliderlabs/ssh"
	"go.uber.org/zap"
	gossh "golang.org/x/crypto/ssh"
)

// Relayer is what the front door needs of the distribution relay
// (*relay.Relay).
type Relayer interface {
	// Serve relays one engineer connection to t until either side ends.
	Serve(ctx context.Context, eng relay.Engineer, t relay.Target, conn net.Conn) error
	// CloseUser ends every live session of user (a revocation) and returns
	// how many ended.
	CloseUser(user, reason string) int
	// KnownAtoms is the atom set the relay's sessions to target share; the
	// text views' policy sessions spend the same budget.
	KnownAtoms(target string) *policy.AtomSet
	// Reconcile decides every live session again after a configuration
	// reload (relay.Relay.Reconcile) and returns how many were kept and
	// ended.
	Reconcile(decide func(relay.Engineer, relay.Target) relay.Keep) (kept, ended int)
}

// Options wire a Server.
type Options struct {
	Config     *config.Config // validated (config.Load or config.Parse)
	HostSigner gossh.Signer
	Gateway    cookies.Gateway // derives engineers' gateway cookies
	Audit      audit.Sink      // every decision is written here; see audit.Stake
	Relay      Relayer
	Log        *zap.Logger
	// Now is the clock for every decision the front door takes on time:
	// gateway cookie windows, certificate validity, the idle timeout and
	// the revocation list's stale limit. nil is time.Now. (Network
	// deadlines use the OS clock.)
	Now func() time.Time
	// Reachable reports whether node answers now; nil asks its epmd with a
	// short timeout.
	Reachable func(ctx context.Context, n *config.Node) bool
	// Cookies yields production cookies for the text views' hidden-node
	// client, tried in the order of cookies.Attempts (normally the relay's
	// own source). nil turns the views off: they refuse, saying so.
	Cookies cookies.Source
	// Revocations, when set, is enforced at every login and watched:
	// a newly revoked user's (or key's, or certificate's) connections and
	// relayed sessions are cut. NewServer reads it once and fails if it
	// cannot; logins fail closed once it has been unreadable for longer
	// than RevocationStaleLimit (cookies.DefaultStaleLimit).
	Revocations          RevocationSource
	RevocationInterval   time.Duration // poll interval (cookies.DefaultWatchInterval)
	RevocationStaleLimit time.Duration
	// Recent, when set, must wrap Audit and be the sink the relay writes
	// to, so `why` and `check` see the relay's refusals too (NewRecent).
	// Nil: NewServer wraps Audit itself.
	Recent *Recent
	// RecipeIdentity, when set, is the -i key file the printed recipe's
	// ssh -N passes (beamgate dev's generated key, which ssh does not try
	// by itself), so that the recipe works when pasted as printed.
	RecipeIdentity string
	// Shells keeps the break-glass requests and grants (nil: break-glass
	// is off and its commands say so).
	Shells cookies.DocStore
	// ShellSweep is how often expired break-glass requests are audited
	// (15 s).
	ShellSweep time.Duration
	// SSHCA reads a Vault SSH engine's CA key, for user_cas entries with
	// vault_mount. NewServer reads each once and fails if it cannot, then
	// re-reads them every vault_refresh.
	SSHCA FetchSSHCA
	// ViewHost is the host part of the views' node names
	// (beamgate_view_<random>@ViewHost); "" is this machine's host name,
	// or "beamgate".
	ViewHost string
}

// Server is the SSH front door. Its methods are safe for concurrent use.
//
// Concurrency contract:
//   - The fields above mu are set by NewServer and never change.
//   - mu guards perUser, live, closing, rev, perTarget and closers. It is
//     held only for map and field updates, never across I/O, an audit
//     append or a call into the relay; applyRevocations collects what to
//     cut under mu and cuts it after unlocking.
//   - Lock order: Server.mu, then connState.mu (admitLocked runs under
//     Server.mu and calls nothing that takes connState.mu). views has its
//     own lock and is never taken under mu.
//   - running counts goroutines that may still write audit records; track
//     adds to it under mu, only while !closing, so drain's Wait sees every
//     one.
type Server struct {
	cfgp atomic.Pointer[config.Config] // the configuration in force (Reload swaps it)
	// unauthed counts the connections still in their SSH handshake
	// (limits.max_unauthenticated).
	unauthed atomic.Int64
	// shells are the live break-glass shells, by grant (shell.go).
	shells liveShells
	opts   Options
	log    *zap.Logger
	auth   *authenticator
	aud    audit.Writer
	ssh    *ssh.Server
	now    func() time.Time
	reach  func(ctx context.Context, n *config.Node) bool

	mu        sync.Mutex
	perUser   map[string]int           // authenticated connections per user
	live      map[*connState]*Identity // authenticated connections, for revocations
	closing   bool                     // Close or Shutdown began: no new tracked work
	running   sync.WaitGroup           // supervisors and channel handlers (see track)
	rev       revocationState
	perTarget map[string]int // relay sessions per node name
	views     *views.Limiter // running views per user per node (limits.views_per_node)
	closers   []func() error // the server's own background work (the revocation watcher), stopped by Close and Shutdown
}

// conf is the configuration in force.
func (s *Server) conf() *config.Config { return s.cfgp.Load() }

// Config is the configuration in force (the latest a Reload put there).
func (s *Server) Config() *config.Config { return s.conf() }

// auditTimeout bounds one audit append made by the front door.
const auditTimeout = 5 * time.Second

// auditUnavailable is what an engineer reads when an action was not done
// because its audit record could not be written.
const auditUnavailable = "beamgate: the gateway's audit log cannot be written right now, so nothing was done; this is not your key or cookie: tell the bastion's operators"

// keepaliveMisses is how many unanswered keepalives close a connection.
const keepaliveMisses = 3

// NewServer builds the SSH server. It does not listen.
func NewServer(o Options) (*Server, error) {
	if o.Config == nil || o.HostSigner == nil || o.Audit == nil || o.Relay == nil {
		return nil, errors.New("gateway: NewServer needs Config, HostSigner, Audit and Relay")
	}
	if err := o.Gateway.Validate(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Recent == nil {
		// Without the composition root's Recent, why and check see the
		// front door's and the views' records, not the relay's.
		o.Recent = NewRecent(o.Audit, o.Now)
	}
	o.Audit = o.Recent
	s := &Server{
		opts:      o,
		log:       o.Log,
		now:       o.Now,
		reach:     o.Reachable,
		perUser:   map[string]int{},
		live:      map[*connState]*Identity{},
		perTarget: map[string]int{},
		views:     views.NewLimiter(o.Config.Limits.ViewsPerNode),
		aud:       audit.Writer{Sink: o.Audit, Log: o.Log, Timeout: auditTimeout},
	}
	if s.opts.ViewHost == "" {
		s.opts.ViewHost = defaultViewHost()
	}
	if s.reach == nil {
		s.reach = epmdReachable
	}
	s.cfgp.Store(o.Config)
	s.auth = &authenticator{cfg: s.conf, clock: o.Now}
	if err := s.startVaultCAs(); err != nil {
		s.closeAll()
		return nil, err
	}
	if o.Shells != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		every := o.ShellSweep
		if every <= 0 {
			every = shellSweep
		}
		go func() { defer close(done); s.sweepShells(ctx, every) }()
		s.closers = append(s.closers, func() error { cancel(); <-done; return nil })
	}
	if o.Revocations != nil {
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.startRevocations(ctx, o.Revocations, o.RevocationInterval, o.RevocationStaleLimit); err != nil {
			cancel()
			return nil, err
		}
		s.closers = append(s.closers, func() error { cancel(); return nil })
	}
	s.ssh = &ssh.Server{
		Addr:                 o.Config.Listen,
		HostSigners:          []ssh.Signer{o.HostSigner},
		Version:              "beamgate",
		ConnCallback:         s.connCallback,
		ServerConfigCallback: s.serverConfig,
		ChannelHandlers: map[string]ssh.ChannelHandler{
			"session":      s.tracked(s.handleSession),
			"direct-tcpip": s.tracked(s.handleDirectTCPIP),
			"default":      s.handleOtherChannel,
		},
		RequestHandlers: map[string]ssh.RequestHandler{
			"default": s.handleGlobalRequest,
		},
	}
	return s, nil
}

// ListenAndServe listens on the configured address and serves.
func (s *Server) ListenAndServe() error {
	l, err := net.Listen("tcp", s.conf().Listen)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve accepts SSH connections on l until Close or Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.log.Info("ssh front door listening", zap.String("addr", l.Addr().String()))
	err := s.ssh.Serve(l)
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Close closes the listener and every connection, waits (bounded) for
// their last audit records, and stops the server's own background work.
// The parts passed in Options (audit log, relay, cookie store) belong to
// the caller, who closes them after Close returns.
func (s *Server) Close() error {
	err := s.ssh.Close()
	if errors.Is(err, ssh.ErrServerClosed) {
		err = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeDrain)
	defer cancel()
	s.drain(ctx)
	return errors.Join(err, s.closeAll())
}

// closeDrain bounds how long Close waits for sessions to write their last
// audit records once their connections are closed.
const closeDrain = 10 * time.Second

// Shutdown stops accepting and waits for connections to end or ctx, then
// stops the server's own background work. As with Close, the parts passed
// in Options are the caller's to close afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.ssh.Shutdown(ctx)
	if err != nil {
		s.ssh.Close()
		dctx, cancel := context.WithTimeout(context.Background(), closeDrain)
		defer cancel()
		s.drain(dctx)
	} else {
		s.drain(ctx)
	}
	return errors.Join(err, s.closeAll())
}

// connState is the front door's per-connection state, kept in the
// gliderlabs context under connStateKey. srv, ctx, netConn and accepted
// are set once; the atomics are updated by channel handlers and read by
// the supervisor; mu guards the authentication notes below it, written
// by x/crypto's auth callbacks and read once when the connection ends.
type connState struct {
	srv      *Server
	ctx      ssh.Context
	netConn  net.Conn
	quickAck *quickAckConn // nil unless TCP_QUICKACK is set while logging in
	accepted time.Time

	channels   atomic.Int32 // open channels
	opened     atomic.Int64 // channels opened so far (for why's hints)
	lastActive atomic.Int64 // unix nanos of the last channel open/close
	counted    atomic.Bool  // counted in srv.perUser

	// home is the engineer's own nodes registered through the recipe's
	// home forward (ssh -L PORT:beamgate:4369) of this connection.
	home homeRegistry

	mu       sync.Mutex
	lastUser string   // last user name attempted
	fails    []string // distinct authentication failure reasons, bounded
	methods  []string
	sessions map[gossh.Channel]struct{} // open session channels, for notices at a cut

	// authed receives the identity once the login is admitted, so
	// supervise can arm the certificate's expiry.
	authed chan *Identity
}

func (c *connState) addSession(ch gossh.Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions == nil {
		c.sessions = map[gossh.Channel]struct{}{}
	}
	c.sessions[ch] = struct{}{}
}

func (c *connState) removeSession(ch gossh.Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sessions, ch)
}

// notice writes msg to the stderr of every open session channel, without
// waiting for a client that does not read.
func (c *connState) notice(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.sessions {
		go ch.Stderr().Write([]byte(msg + "\r\n"))
	}
}

// certExpired cuts a connection whose certificate stopped being valid.
func (c *connState) certExpired(id *Identity) {
	sc := serverConnOf(c.ctx)
	if sc == nil {
		return
	}
	reason := fmt.Sprintf("certificate %q (serial %d) expired at %s", trimField(id.KeyID, 200), id.CertSerial, id.CertExpires.UTC().Format(time.RFC3339))
	c.auditConn(sc, audit.EventDisconnect, audit.DecisionDeny, reason)
	c.srv.log.Info("closing an ssh connection whose certificate expired", zap.String("user", id.User), zap.String("key_id", id.KeyID))
	c.notice("beamgate: your " + reason + "; this connection and its sessions are closed. Sign a new certificate and reconnect.")
	time.Sleep(100 * time.Millisecond) // let the notice leave before the close
	c.netConn.Close()
}

type connStateKey struct{}

func stateOf(ctx ssh.Context) *connState {
	c, _ := ctx.Value(connStateKey{}).(*connState)
	return c
}

// serverConnOf returns the authenticated connection, or nil before the
// handshake completed.
func serverConnOf(ctx ssh.Context) *gossh.ServerConn {
	sc, _ := ctx.Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	return sc
}

// connCallback runs for every accepted TCP connection, before the SSH
// handshake: it arms the handshake timeout and starts the connection's
// supervisor (keepalives, idle timeout, end-of-connection accounting).
func (s *Server) connCallback(ctx ssh.Context, conn net.Conn) net.Conn {
	c := &connState{srv: s, ctx: ctx, netConn: conn, accepted: s.now(), authed: make(chan *Identity, 1)}
	c.lastActive.Store(s.now().UnixNano())
	ctx.SetValue(connStateKey{}, c)
	if !s.track() {
		conn.Close()
		return nil
	}
	if max := int64(s.conf().Limits.MaxUnauthenticated); s.unauthed.Add(1) > max {
		s.unauthed.Add(-1)
		defer s.running.Done()
		reason := fmt.Sprintf("%s (limits.max_unauthenticated is %d)", errTooManyStarting, max)
		s.aud.Record(ctx, audit.After, &audit.Record{
			Event: audit.EventLogin, SourceAddr: sourceAddr(conn.RemoteAddr()), Decision: audit.DecisionDeny, Reason: reason,
		})
		s.log.Warn("ssh connection dropped before its handshake", zap.String("remote", sourceAddr(conn.RemoteAddr())), zap.String("reason", reason))
		conn.Close()
		return nil
	}
	conn = withQuickAck(conn)
	c.quickAck, _ = conn.(*quickAckConn)
	go func() {
		defer s.running.Done()
		c.supervise()
	}()
	return conn
}

// track counts a goroutine that may still write audit records (a
// connection's supervisor, a channel handler), so that Close and Shutdown
// wait for it before they close the audit log. It refuses once closing.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.running.Add(1)
	return true
}

func (s *Server) tracked(h ssh.ChannelHandler) ssh.ChannelHandler {
	return func(srv *ssh.Server, sc *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
		if !s.track() {
			newChan.Reject(gossh.ConnectionFailed, "the gateway is shutting down")
			return
		}
		defer s.running.Done()
		h(srv, sc, newChan, ctx)
	}
}

// drain stops new work and waits, at most until ctx ends, for the
// connections' supervisors and channel handlers to write their last audit
// records (logouts, relay session ends).
func (s *Server) drain(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown: gave up waiting for sessions to write their last audit records")
	}
}

// supervise enforces the handshake timeout, sends keepalives, closes idle
// connections, and accounts for the connection when it ends.
func (c *connState) supervise() {
	s := c.srv
	lim := s.conf().Limits
	handshake := time.NewTimer(lim.HandshakeTimeout)
	defer handshake.Stop()
	tick := time.NewTicker(lim.KeepaliveInterval)
	defer tick.Stop()
	var inflight atomic.Int32
	var (
		expiry   <-chan time.Time
		expiring *Identity
	)
	// The connection holds one of limits.max_unauthenticated until it
	// logs in or ends.
	unauthed := true
	loggedIn := func() {
		if unauthed {
			unauthed = false
			s.unauthed.Add(-1)
		}
	}
	defer loggedIn()
	for {
		select {
		case <-c.ctx.Done():
			c.ended()
			return
		case id := <-c.authed:
			loggedIn()
			if c.quickAck != nil {
				c.quickAck.loggedIn()
			}
			if !id.CertExpires.IsZero() {
				t := time.NewTimer(time.Until(id.CertExpires))
				defer t.Stop()
				expiry, expiring = t.C, id
			}
		case <-expiry:
			expiry = nil
			c.certExpired(expiring)
		case <-handshake.C:
			if serverConnOf(c.ctx) == nil {
				c.fail("", fmt.Sprintf("%s: not logged in within limits.handshake_timeout (%s)", errHandshakeTimer, lim.HandshakeTimeout))
				c.netConn.Close()
			}
		case <-tick.C:
			sc := serverConnOf(c.ctx)
			if sc == nil {
				continue
			}
			if inflight.Load() >= keepaliveMisses {
				s.log.Info("closing unresponsive ssh connection", zap.String("user", sc.User()), zap.String("remote", sourceAddr(sc.RemoteAddr())))
				sc.Close()
				continue
			}
			idleFor := s.now().Sub(time.Unix(0, c.lastActive.Load()))
			if c.channels.Load() == 0 && idleFor >= lim.IdleTimeout {
				c.auditConn(sc, audit.EventDisconnect, audit.DecisionInfo, "idle timeout")
				sc.Close()
				continue
			}
			inflight.Add(1)
			go func() {
				// OpenSSH answers with a failure reply; any reply means alive.
				if _, _, err := sc.SendRequest("keepalive@openssh.com", true, nil); err == nil {
					inflight.Store(0)
				}
			}()
		}
	}
}

// maxFailReasons bounds the failure reasons kept per connection.
const maxFailReasons = 8

// fail notes an authentication failure for the end-of-connection record.
// An empty reason clears them (the connection authenticated).
func (c *connState) fail(user, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if user != "" {
		c.lastUser = user
	}
	switch {
	case reason == "":
		c.fails = nil
	case len(c.fails) < maxFailReasons && !slices.Contains(c.fails, reason):
		c.fails = append(c.fails, reason)
	}
}

// ended accounts for a closed connection: releases the per-user slot, and
// audits a failed login or a logout.
func (c *connState) ended() {
	s := c.srv
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	sc := serverConnOf(c.ctx)
	if sc != nil {
		if id, ok := identityOf(sc); ok {
			if c.counted.Load() {
				s.mu.Lock()
				if s.perUser[id.User]--; s.perUser[id.User] <= 0 {
					delete(s.perUser, id.User)
				}
				s.mu.Unlock()
			}
			c.auditConn(sc, audit.EventLogout, audit.DecisionInfo, "")
			return
		}
	}
	if c.counted.Load() {
		// Verified but the handshake failed afterwards.
		s.mu.Lock()
		if s.perUser[c.lastUser]--; s.perUser[c.lastUser] <= 0 {
			delete(s.perUser, c.lastUser)
		}
		s.mu.Unlock()
	}
	c.mu.Lock()
	user, reason, methods := c.lastUser, strings.Join(c.fails, "; "), append([]string(nil), c.methods...)
	c.mu.Unlock()
	if reason == "" {
		reason = errNotAuthedYet.Error()
	}
	detail := map[string]string{}
	if len(methods) > 0 {
		detail["methods"] = fmt.Sprint(methods)
	}
	s.aud.Record(c.ctx, audit.After, &audit.Record{
		Event:      audit.EventLogin,
		User:       user,
		SourceAddr: sourceAddr(c.netConn.RemoteAddr()),
		Decision:   audit.DecisionDeny,
		Reason:     reason,
		Detail:     detail,
	})
	s.log.Info("ssh login refused", zap.String("user", user), zap.String("remote", sourceAddr(c.netConn.RemoteAddr())), zap.String("reason", reason))
}

// auditConn records a connection-level event for an authenticated conn.
func (c *connState) auditConn(sc *gossh.ServerConn, event audit.Event, decision audit.Decision, reason string) {
	id, _ := identityOf(sc)
	r := c.srv.record(c.ctx, id, event, decision, reason)
	c.srv.aud.Record(c.ctx, audit.After, r)
}

// serverConfig builds the x/crypto server configuration for one
// connection: restricted algorithms, public-key-only authentication with
// the verified-key pattern, and "none" refused.
func (s *Server) serverConfig(ctx ssh.Context) *gossh.ServerConfig {
	c := stateOf(ctx)
	cfg := &gossh.ServerConfig{
		Config: gossh.Config{
			KeyExchanges: kexAlgorithms,
			Ciphers:      cipherSuites,
			MACs:         macAlgorithms,
		},
		PublicKeyAuthAlgorithms: publicKeyAuthAlgorithms(),
		MaxAuthTries:            6,
		// gliderlabs sets NoClientAuth because none of its own handlers is
		// set; this callback is what refuses "none".
		NoClientAuthCallback: func(conn gossh.ConnMetadata) (*gossh.Permissions, error) {
			return nil, errNoClientAuth
		},
		PublicKeyCallback: func(conn gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			perms, err := s.auth.checkKey(conn, key)
			if err != nil {
				if c != nil {
					c.fail(conn.User(), fmt.Sprintf("%s: %v (%s)", key.Type(), err, keyDescription(key)))
				}
				if errors.Is(err, errCertRefused) {
					// A certificate from a trusted CA that is refused: its
					// holder is told why (ssh prints the banner), e.g.
					// expired, too long-lived, a role its CA may not grant.
					return nil, &gossh.BannerError{Err: noted(err), Message: "beamgate: " + err.Error() + "\r\n"}
				}
				return nil, noted(err)
			}
			return perms, nil
		},
		VerifiedPublicKeyCallback: func(conn gossh.ConnMetadata, key gossh.PublicKey, perms *gossh.Permissions, _ string) (*gossh.Permissions, error) {
			out, err := s.auth.verified(conn, key, perms)
			if err != nil {
				if c != nil {
					c.fail(conn.User(), err.Error())
				}
				return nil, noted(err)
			}
			id := out.ExtraData[identityKey{}].(*Identity)
			if c != nil {
				s.mu.Lock()
				if err := s.admitLocked(c, id); err != nil {
					s.mu.Unlock()
					c.fail(id.User, err.Error())
					s.log.Info("ssh login refused by the revocation list", zap.String("user", id.User), zap.String("fingerprint", id.Fingerprint), zap.Error(err))
					return nil, &gossh.BannerError{Err: noted(err), Message: "beamgate: login refused: " + err.Error() + "\r\n"}
				}
				if !c.counted.Load() {
					n := s.perUser[id.User]
					if n >= s.conf().Limits.MaxConnectionsPerUser {
						delete(s.live, c)
						s.mu.Unlock()
						c.fail(id.User, errTooManyConns.Error())
						return nil, &gossh.BannerError{Err: noted(errTooManyConns), Message: "beamgate: login refused: " + errTooManyConns.Error() + "\r\n"}
					}
					s.perUser[id.User] = n + 1
					c.counted.Store(true)
				}
				s.mu.Unlock()
				c.fail(id.User, "")
			}
			r := s.record(ctx, id, audit.EventLogin, audit.DecisionAllow, "")
			r.Detail = mergeDetail(r.Detail, "roles", strings.Join(id.Roles(), ","))
			r.Detail["role_source"] = id.RoleSource
			if !id.CertExpires.IsZero() {
				r.Detail["cert_expires"] = id.CertExpires.UTC().Format(time.RFC3339)
			}
			r.Session = shortSession(hex.EncodeToString(conn.SessionID()))
			r.SourceAddr = sourceAddr(conn.RemoteAddr())
			if err := s.aud.Record(ctx, audit.Gate, r); err != nil {
				if c != nil {
					c.fail(id.User, errAuditFailed.Error()+": "+err.Error())
				}
				// The engineer reads why (an SSH banner), not a key error.
				return nil, &gossh.BannerError{Err: noted(errAuditFailed), Message: auditUnavailable + "\r\n"}
			}
			s.log.Info("ssh login", zap.String("user", id.User), zap.String("key_id", id.KeyID), zap.Bool("cert", id.Cert), zap.String("remote", r.SourceAddr))
			if c != nil {
				select {
				case c.authed <- id:
				default:
				}
			}
			return out, nil
		},
		AuthLogCallback: func(conn gossh.ConnMetadata, method string, err error) {
			if c == nil || err == nil {
				return
			}
			c.mu.Lock()
			if len(c.methods) < 16 && (len(c.methods) == 0 || c.methods[len(c.methods)-1] != method) {
				c.methods = append(c.methods, method)
			}
			if c.lastUser == "" {
				c.lastUser = conn.User()
			}
			c.mu.Unlock()
			if method != "none" && method != "publickey" {
				c.fail("", "method "+method+" refused")
			} else if method == "publickey" && !errors.Is(err, errAuthNoted) {
				c.fail("", err.Error()) // e.g. source-address, algorithm refused
			}
		},
	}
	return cfg
}

// keyDescription names a refused key for the audit log: its fingerprint,
// or a certificate's key id, serial, key and CA fingerprints.
func keyDescription(key gossh.PublicKey) string {
	cert, ok := key.(*gossh.Certificate)
	if !ok {
		return gossh.FingerprintSHA256(key)
	}
	return fmt.Sprintf("certificate key id %q, serial %d, key %s, CA %s", trimField(cert.KeyId, 200), cert.Serial,
		gossh.FingerprintSHA256(cert.Key), gossh.FingerprintSHA256(cert.SignatureKey))
}

// trimField bounds a client-chosen string in an audit reason.
func trimField(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// errAuthNoted marks an authentication error already noted by fail, so
// AuthLogCallback does not note it twice.
var errAuthNoted = errors.New("noted")

func noted(err error) error { return fmt.Errorf("%w%w", err, errAuthNoted) }

// record starts an audit record for an authenticated connection.
func (s *Server) record(ctx ssh.Context, id *Identity, event audit.Event, decision audit.Decision, reason string) *audit.Record {
	r := &audit.Record{
		Event:      event,
		Session:    sessionOf(ctx),
		SourceAddr: sourceAddr(ctx.RemoteAddr()),
		Decision:   decision,
		Reason:     reason,
	}
	if id != nil {
		r.User = id.User
		r.KeyID = id.KeyID
		r.CertSerial = id.CertSerial
		if id.Cert {
			r.Detail = map[string]string{"fingerprint": id.Fingerprint, "ca": id.CA, "ca_fingerprint": id.CAFingerprint}
			if len(id.CertRoles) > 0 {
				r.Detail["cert_roles"] = strings.Join(id.CertRoles, ",")
			}
		}
	}
	return r
}

// sessionOf is the short SSH session id used in audit records.
// It is empty before the handshake completed.
func sessionOf(ctx ssh.Context) string {
	id, _ := ctx.Value(ssh.ContextKeySessionID).(string)
	return shortSession(id)
}

func shortSession(id string) string {
	if len(id) > 16 {
		id = id[:16]
	}
	return id
}

// handleGlobalRequest refuses every global request (tcpip-forward, i.e.
// ssh -R, and the rest), auditing port-forward requests. Client
// keepalives get a failure reply, which OpenSSH counts as alive.
func (s *Server) handleGlobalRequest(ctx ssh.Context, _ *ssh.Server, req *gossh.Request) (bool, []byte) {
	switch req.Type {
	case "tcpip-forward", "streamlocal-forward@openssh.com":
		id, _ := identityOf(serverConnOf(ctx))
		r := s.record(ctx, id, audit.EventRemoteForward, audit.DecisionDeny, "remote forwarding (ssh -R) is refused")
		var p struct {
			Addr string
			Port uint32
		}
		if gossh.Unmarshal(req.Payload, &p) == nil {
			r.Dest = fmt.Sprintf("%s:%d", p.Addr, p.Port)
		}
		s.aud.Record(ctx, audit.After, r)
	}
	return false, nil
}

// closeAll runs the server's closers, joining their errors.
func (s *Server) closeAll() error {
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	var errs []error
	for _, c := range closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}
