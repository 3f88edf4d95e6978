// Package relay is beamgate's Erlang distribution relay: it terminates the
// handshake with an engineer's node (as acceptor, checking the engineer's
// gateway cookie) and with a production node (as initiator, with the
// production cookie), then decodes every engineer→production message,
// asks policy for a decision, audits it, and forwards or refuses it with an
// immediate error. Production is always drained.
package relay

import (
	"context"
	"errors"
	"net"

	"beamgate/audit"
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
	Profile    *policy.Profile
	Mode       policy.Mode
}

// CookieSource yields production cookies. Implementations never log them.
type CookieSource interface {
	// ProductionCookie returns the cookie for cluster. fresh asks the source
	// to bypass its cache (after production refused a handshake).
	ProductionCookie(ctx context.Context, cluster string, fresh bool) (string, error)
}

// Config wires a Relay.
type Config struct {
	Audit   *audit.Log
	Cookies CookieSource
	Log     *zap.Logger
}

// Relay serves relayed distribution connections.
type Relay struct {
	cfg Config
}

// New returns a Relay.
func New(cfg Config) *Relay { return &Relay{cfg: cfg} }

// Serve relays one engineer connection (already authorised to reach t) to
// production until either side ends, ctx is cancelled, or policy or the
// audit log ends the session.
func (r *Relay) Serve(ctx context.Context, eng Engineer, t Target, conn net.Conn) error {
	conn.Close()
	return errors.New("relay: not implemented yet")
}

// CloseUser ends every live session of user and returns how many ended.
func (r *Relay) CloseUser(user, reason string) int { return 0 }
