// Package relay is beamgate's Erlang distribution relay. For each engineer
// connection it terminates the handshake twice: towards the engineer's node
// as the acceptor (checking the engineer's gateway cookie) and towards the
// production node as the initiator (with the production cookie). It then
// decodes every engineer→production message, asks policy for a Decision,
// writes the audit record, and only then forwards the message, or answers
// a refusal with an immediate error in the engineer's own protocol.
// Production is always drained: a slow engineer is buffered up to a cap and
// then cut off, never allowed to back up production's distribution buffer.
package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/dist/handshake"
	"beamgate/policy"

	"go.uber.org/zap"
)

// Target is a production node engineers may reach through the gateway.
type Target struct {
	Cluster     string // cluster name from the configuration
	Name        string // the node's real name, as engineers dial it: prismatic@prod-01
	Dial        string // where beamgate reaches its epmd: host, or host:port (4369 default)
	GatewayPort int    // the distribution port engineers forward to reach it
}

// Engineer is the authenticated person behind one relayed connection.
type Engineer struct {
	User       string
	Roles      []string
	Session    string   // SSH session id, for the audit log
	KeyID      string   // certificate key id, or the key's SHA256 fingerprint
	CertSerial uint64   // certificate serial (0 for plain keys)
	SourceAddr string   // the SSH client's address
	Cookies    []string // gateway cookies accepted for this engineer (current and previous window)
	// ExpiredCookies are the engineer's older gateway cookies, newest
	// first: a node proving one of them is told its cookie expired.
	ExpiredCookies []string
	Profile        *policy.Profile
	Mode           policy.Mode
	// ShellGrant, when set, says whether the engineer holds an active
	// break-glass grant on node; asked when the policy refuses a remote
	// shell, and then every few seconds while one runs.
	ShellGrant func(node string) (ShellGrant, bool)
	// Localize, when set, rewrites a notice shown on the engineer's
	// terminal so that the commands it prints ("ssh bastion why") name
	// the gateway as this engineer reaches it.
	Localize func(notice string) string
}

// localize is e.Localize, or the notice as it is.
func (e Engineer) localize(notice string) string {
	if e.Localize == nil {
		return notice
	}
	return e.Localize(notice)
}

// Limits bound one relayed session. Zero values take the defaults.
type Limits struct {
	// HandshakeTimeout bounds both handshakes together (10 s).
	HandshakeTimeout time.Duration
	// MaxEngineerFrame bounds one engineer→production frame (8 MiB).
	MaxEngineerFrame int
	// MaxProductionFrame bounds one production→engineer frame (256 MiB).
	MaxProductionFrame int
	// MaxBuffered bounds production→engineer bytes waiting for a slow
	// engineer; past it the session ends (512 MiB).
	MaxBuffered int
	// Silence ends a session when a leg sent nothing, not even a tick, for
	// this long (90 s; OTP's net_ticktime is 60 s).
	Silence time.Duration
	// BufferBudget bounds production→engineer bytes waiting over all
	// sessions together (0: no gateway-wide bound). Past it the sessions
	// holding the most are ended first (budget.go).
	BufferBudget int64
}

func (l Limits) withDefaults() Limits {
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = 10 * time.Second
	}
	if l.MaxEngineerFrame <= 0 {
		l.MaxEngineerFrame = 8 << 20
	}
	if l.MaxProductionFrame <= 0 {
		l.MaxProductionFrame = 256 << 20
	}
	if l.MaxBuffered <= 0 {
		l.MaxBuffered = 512 << 20
	}
	if l.Silence <= 0 {
		l.Silence = 90 * time.Second
	}
	return l
}

// Config wires a Relay.
type Config struct {
	Audit   audit.Sink     // required: every message is on disk before it is forwarded
	Cookies cookies.Source // required; tried in the order of cookies.Attempts
	Log     *zap.Logger
	Limits  Limits
	// Now is the clock for silence and tick decisions; nil is time.Now.
	// (Network deadlines use the OS clock.)
	Now func() time.Time
	// Dialer reaches production; nil uses a net.Dialer with a 5 s timeout.
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
}

// Relay serves relayed distribution connections. It is safe for
// concurrent use.
//
// Concurrency contract: cfg, limits, log and aud are set by New and never
// change. mu guards sessions and closed (a session registers under mu and
// Close cancels every registered one under mu; cancelling only records a
// cause, so no session code runs under mu). atomsMu guards the atoms map
// only; each AtomSet has its own lock. mu and atomsMu are never held
// together.
type Relay struct {
	cfg    Config
	limits Limits
	log    *zap.Logger
	aud    audit.Writer // waits as long as the session does

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool
	// endedIn and endedOut are the bytes of sessions that ended (Bytes).
	endedIn, endedOut int64

	atomsMu sync.Mutex
	atoms   map[string]*policy.AtomSet // per target node

	unknownLogged sync.Map // target/side/bits → struct{}: unknown flag bits logged once
	standIn       atomic.Uint32
	buffered      atomic.Int64 // production→engineer bytes held by every session (budget.go)
}

// New returns a Relay. cfg.Audit and cfg.Cookies are required.
func New(cfg Config) *Relay {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
	}
	r := &Relay{cfg: cfg, limits: cfg.Limits.withDefaults(), log: cfg.Log,
		aud:      audit.Writer{Sink: cfg.Audit, Log: cfg.Log, Timeout: -1},
		sessions: map[*session]struct{}{}, atoms: map[string]*policy.AtomSet{}}
	r.standIn.Store(1 << 27)
	return r
}

func (r *Relay) knownAtoms(target string) *policy.AtomSet {
	r.atomsMu.Lock()
	defer r.atomsMu.Unlock()
	s := r.atoms[target]
	if s == nil {
		s = policy.NewAtomSet(200000)
		r.atoms[target] = s
	}
	return s
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("relay: closed")

// Serve relays one engineer connection (already authorised to reach t) to
// production until either side ends, ctx is cancelled, or policy or the
// audit log ends the session. It closes conn.
func (r *Relay) Serve(ctx context.Context, eng Engineer, t Target, conn net.Conn) error {
	defer conn.Close()
	if eng.Profile == nil {
		return errors.New("relay: engineer has no policy profile")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := &session{r: r, eng: eng, target: t, econn: conn, cancel: cancel, id: newSessionID(eng.Session)}
	if !r.register(s) {
		return ErrClosed
	}
	defer r.unregister(s)
	return s.run(ctx)
}

// Sessions returns the number of live sessions, and of those the number
// to target (by node name) when target is not empty.
func (r *Relay) Sessions(target string) (all, toTarget int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.sessions {
		all++
		if s.target.Name == target {
			toTarget++
		}
	}
	return all, toTarget
}

// CloseUser ends every live session of user and returns how many ended.
func (r *Relay) CloseUser(user, reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for s := range r.sessions {
		if s.eng.User == user {
			s.cancel(&EndError{Reason: reason})
			n++
		}
	}
	return n
}

// Keep is Reconcile's verdict on one live session.
type Keep struct {
	OK      bool   // the session may go on
	Reason  string // why not (the audit log and the session end say it)
	Profile *policy.Profile
	Mode    policy.Mode
}

// Reconcile decides every live session again (a configuration reload):
// decide says, from the engineer and target the session started with,
// whether it may go on and under which policy. Sessions that may not are
// ended with the reason; the others take the policy from their next
// message on. It returns how many sessions were kept and ended.
func (r *Relay) Reconcile(decide func(Engineer, Target) Keep) (kept, ended int) {
	r.mu.Lock()
	live := make([]*session, 0, len(r.sessions))
	for s := range r.sessions {
		live = append(live, s)
	}
	r.mu.Unlock()
	for _, s := range live {
		s.polMu.Lock()
		eng := s.eng
		s.polMu.Unlock()
		k := decide(eng, s.target)
		if !k.OK {
			s.cancel(&EndError{Reason: k.Reason})
			ended++
			continue
		}
		kept++
		s.setPolicy(k.Profile, k.Mode)
	}
	return kept, ended
}

// Close ends every session and refuses new ones.
func (r *Relay) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for s := range r.sessions {
		s.cancel(&EndError{Reason: "gateway shutting down"})
	}
}

func (r *Relay) register(s *session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.sessions[s] = struct{}{}
	return true
}

func (r *Relay) unregister(s *session) {
	r.mu.Lock()
	delete(r.sessions, s)
	// Under mu, with the delete: Bytes never counts a session twice or
	// not at all, so the totals only grow.
	r.endedIn += s.bytesIn.Load()
	r.endedOut += s.bytesOut.Load()
	r.mu.Unlock()
}

// Bytes returns the distribution bytes relayed so far, engineer to
// production and production to engineer, ended and live sessions
// together (frame headers included, as in session_end records).
func (r *Relay) Bytes() (e2p, p2e int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e2p, p2e = r.endedIn, r.endedOut
	for s := range r.sessions {
		e2p += s.bytesIn.Load()
		p2e += s.bytesOut.Load()
	}
	return e2p, p2e
}

// EndError says why a session was ended by the gateway.
type EndError struct{ Reason string }

func (e *EndError) Error() string { return "session ended: " + e.Reason }

func newSessionID(ssh string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	if ssh != "" {
		n := min(len(ssh), 12)
		return ssh[:n] + "-" + id
	}
	return id
}

func alivePart(node string) string {
	alive, _, _ := strings.Cut(node, "@")
	return alive
}

// logUnknownFlags logs, once per target, side and set of bits, capability
// bits beamgate does not know and therefore cleared.
func (r *Relay) logUnknownFlags(target, side string, unknown handshake.Flags) {
	if unknown == 0 {
		return
	}
	key := target + "/" + side + "/" + strconv.FormatUint(uint64(unknown), 16)
	if _, loaded := r.unknownLogged.LoadOrStore(key, struct{}{}); loaded {
		return
	}
	r.log.Warn("cleared capability flags unknown to beamgate",
		zap.String("target", target), zap.String("side", side),
		zap.String("flags", "0x"+strconv.FormatUint(uint64(unknown), 16)))
}
