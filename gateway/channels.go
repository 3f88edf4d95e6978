package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"beamgate/audit"
	"beamgate/gateway/config"
	"beamgate/gateway/epmd"
	"beamgate/gateway/relay"

	"github.com/gliderlabs/ssh"
	"go.uber.org/zap"
	gossh "golang.org/x/crypto/ssh"
)

// reachTimeout bounds the banner's live reachability check per node.
const reachTimeout = 1500 * time.Millisecond

// directTCPIP is the RFC 4254 §7.2 payload of a direct-tcpip channel open.
type directTCPIP struct {
	DestAddr   string
	DestPort   uint32
	OriginAddr string
	OriginPort uint32
}

// forward is the decision for one direct-tcpip channel.
type forward struct {
	kind  string       // "epmd", "home" or "relay"; "" when refused
	host  string       // the destination host as the engineer named it
	node  *config.Node // the relay target
	on    []*config.Node
	deny  string // refusal reason
	grant config.Grant
	// epmdPort is the engineer's local epmd port for an epmd face: NAMES
	// answers carry it, and OTP refuses any other.
	epmdPort int
}

// decideForward decides a direct-tcpip destination for a user holding
// roles. Only the epmd port and the gateway ports of nodes the roles
// reach, on those nodes' hosts, are allowed; everything else is refused:
// beamgate is never an open proxy.
func (s *Server) decideForward(roles []string, host string, port uint32) forward {
	f := forward{host: host}
	grants := s.conf().GrantsFor(roles)
	reachable := s.conf().ReachableFor(roles)
	if strings.EqualFold(host, config.HomeHost) {
		// The recipe's home forward names the cluster's local epmd port
		// as its destination port: NAMES answers must carry it.
		var ports []string
		for _, cl := range slices.Sorted(maps.Keys(grants)) {
			l, _ := s.conf().Layout(cl)
			if uint32(l.EpmdPort) == port {
				f.kind, f.epmdPort = "home", l.EpmdPort
				return f
			}
			ports = append(ports, strconv.Itoa(l.EpmdPort))
		}
		f.deny = fmt.Sprintf("%s:%d is not your own node's epmd; the recipe forwards %s:PORT with PORT one of %s", host, port, config.HomeHost, strings.Join(ports, ", "))
		return f
	}
	on := config.NodesOnHost(reachable, host)
	if len(on) == 0 {
		f.deny = fmt.Sprintf("%s is not the host of a node you may reach", host)
		return f
	}
	f.on = on
	// An epmd face: the recipe forwards HOST:PORT with PORT the cluster's
	// local epmd port, which NAMES answers must carry; HOST:4369 (older
	// recipes, hand-written forwards) gets engineer_epmd_port.
	if port == config.EpmdPort {
		f.kind, f.epmdPort = "epmd", s.conf().EngineerEpmdPort
		return f
	}
	for _, n := range on {
		if l, _ := s.conf().Layout(n.Cluster); uint32(l.EpmdPort) == port {
			f.kind, f.epmdPort = "epmd", l.EpmdPort
			return f
		}
	}
	for _, n := range on {
		if uint32(n.GatewayPort) == port {
			f.kind, f.node = "relay", n
			f.grant = grants[n.Cluster]
			return f
		}
	}
	f.deny = fmt.Sprintf("port %d on %s is neither epmd (4369, or your cluster's local epmd port) nor the gateway port of a node you may reach", port, host)
	return f
}

// handleDirectTCPIP brokers ssh -L channels into the epmd face and the
// relay, after authorising them from the verified identity.
func (s *Server) handleDirectTCPIP(_ *ssh.Server, sc *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	id, ok := identityOf(sc)
	if !ok {
		newChan.Reject(gossh.Prohibited, "not authenticated")
		return
	}
	var p directTCPIP
	if err := gossh.Unmarshal(newChan.ExtraData(), &p); err != nil || len(p.DestAddr) > 255 {
		s.aud.Record(ctx, audit.After, s.record(ctx, id, audit.EventForward, audit.DecisionDeny, "malformed direct-tcpip request"))
		newChan.Reject(gossh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	dest := net.JoinHostPort(p.DestAddr, strconv.FormatUint(uint64(p.DestPort), 10))
	deny := func(reason gossh.RejectionReason, msg string, f forward) {
		r := s.record(ctx, id, audit.EventForward, audit.DecisionDeny, msg)
		r.Dest = dest
		if f.node != nil {
			r.Target, r.Cluster = f.node.Name, f.node.Cluster
		}
		s.aud.Record(ctx, audit.After, r)
		s.log.Info("forward refused", zap.String("user", id.User), zap.String("dest", dest), zap.String("reason", msg))
		newChan.Reject(reason, msg)
	}

	f := s.decideForward(id.Roles(), p.DestAddr, p.DestPort)
	if f.kind == "" {
		deny(gossh.Prohibited, f.deny, f)
		return
	}
	c := stateOf(ctx)
	if !c.openChannel() {
		deny(gossh.ResourceShortage, fmt.Sprintf("too many channels on this connection (limit %d)", s.conf().Limits.MaxChannelsPerConnection), f)
		return
	}
	release := c.closeChannel
	if f.kind == "relay" {
		if !s.acquireTarget(f.node.Name) {
			release()
			deny(gossh.ResourceShortage, fmt.Sprintf("too many sessions to %s (limit %d)", f.node.Name, s.conf().Limits.MaxSessionsPerTarget), f)
			return
		}
		release = func() { s.releaseTarget(f.node.Name); c.closeChannel() }
	}

	r := s.record(ctx, id, audit.EventForward, audit.DecisionAllow, "")
	r.Dest = dest
	if f.node != nil {
		r.Target, r.Cluster = f.node.Name, f.node.Cluster
	} else {
		r.Detail = mergeDetail(r.Detail, "service", f.kind)
	}
	if err := s.aud.Record(ctx, audit.Gate, r); err != nil {
		release()
		newChan.Reject(gossh.ConnectionFailed, "audit log unavailable")
		return
	}
	ch, reqs, err := newChan.Accept()
	if err != nil {
		release()
		return
	}
	go gossh.DiscardRequests(reqs)

	chCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn := newChannelConn(ch, channelAddr{dest}, sc.RemoteAddr(), release)
	conn.abort = func() {
		s.log.Info("closing an ssh connection whose client stopped reading", zap.String("user", id.User), zap.String("dest", dest))
		sc.Close()
	}
	defer conn.Close()

	switch f.kind {
	case "epmd":
		err = s.faceFor(ctx, id, f).Serve(chCtx, conn)
	case "home":
		err = s.homeFace(ctx, id, c, f.epmdPort, dest).Serve(chCtx, conn)
	case "relay":
		err = s.opts.Relay.Serve(chCtx, s.engineer(ctx, sc, id, f.grant), targetOf(f.node), conn)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Info("forward ended", zap.String("user", id.User), zap.String("dest", dest), zap.String("service", f.kind), zap.Error(err))
	}
}

// targetOf is the relay's view of n.
func targetOf(n *config.Node) relay.Target {
	return relay.Target{Cluster: n.Cluster, Name: n.Name, Dial: n.Dial, GatewayPort: n.GatewayPort}
}

// engineer builds the relay's view of the authenticated user.
func (s *Server) engineer(ctx ssh.Context, sc *gossh.ServerConn, id *Identity, g config.Grant) relay.Engineer {
	return relay.Engineer{
		User:       id.User,
		Roles:      id.Roles(),
		Session:    sessionOf(ctx),
		KeyID:      id.KeyID,
		CertSerial: id.CertSerial,
		SourceAddr: sourceAddr(sc.RemoteAddr()),
		Cookies:    s.opts.Gateway.Accepted(id.User, s.now()),
		// A fortnight of daily windows: enough to tell "expired" from "wrong".
		ExpiredCookies: s.opts.Gateway.Expired(id.User, s.now(), 14),
		Profile:        g.Profile,
		Mode:           g.Mode,
		ShellGrant:     s.shellGrantOf(id.User),
		Localize:       func(notice string) string { return s.localize(ctx, id, notice) },
	}
}

// faceFor builds the epmd face an engineer sees on one host: the nodes
// there the engineer may reach, at their gateway ports.
func (s *Server) faceFor(ctx ssh.Context, id *Identity, f forward) *epmd.Face {
	on := f.on
	return &epmd.Face{
		RequestTimeout: s.conf().Limits.ForwardTimeout,
		EPMDPort:       uint16(f.epmdPort),
		Lookup: func(alive string) (uint16, bool) {
			for _, n := range on {
				if n.Alive == alive {
					return uint16(n.GatewayPort), true
				}
			}
			return 0, false
		},
		Names: func() []epmd.NameEntry {
			out := make([]epmd.NameEntry, 0, len(on))
			for _, n := range on {
				out = append(out, epmd.NameEntry{Name: n.Alive, Port: n.GatewayPort})
			}
			return out
		},
		Observe: s.observeEpmd(ctx, id, net.JoinHostPort(f.host, strconv.Itoa(config.EpmdPort))),
	}
}

// observeEpmd audits what an epmd face answered on dest.
func (s *Server) observeEpmd(ctx ssh.Context, id *Identity, dest string) func(epmd.Request, string) {
	return func(req epmd.Request, outcome string) {
		decision := audit.DecisionInfo
		switch outcome {
		case epmd.OutcomeAnswered:
			decision = audit.DecisionAllow
		case epmd.OutcomeNotFound, epmd.OutcomeRefused:
			decision = audit.DecisionDeny
		}
		r := s.record(ctx, id, audit.EventEpmd, decision, outcome)
		r.Dest = dest
		r.Op = req.String()
		switch req := req.(type) {
		case *epmd.PortPlease2Req:
			r.Detail = mergeDetail(r.Detail, "alive", truncate(req.Name, 64))
			if outcome == epmd.OutcomeNotFound {
				r.Reason = fmt.Sprintf("not_found: no node named %s that you may reach on %s", truncate(req.Name, 64), hostOf(dest))
			}
		case *epmd.Alive2Req:
			r.Detail = mergeDetail(r.Detail, "alive", truncate(req.Name, 64))
			if outcome == epmd.OutcomeRefused {
				r.Reason = fmt.Sprintf("refused: a node named %s is already registered through this ssh connection", truncate(req.Name, 64))
			}
		}
		// The face answers from configuration (or, for the home face,
		// the engineer's own registrations), never from production, and
		// refuses whatever it does not know: the record follows.
		s.aud.Record(ctx, audit.After, r)
	}
}

// homeFace builds the epmd face of the recipe's home forward
// (config.HomeHost): the engineer's node registers there, and
// net_adm:names() on the engineer's host lands there. It knows only the
// engineer's own nodes registered on this connection, so observer's
// Nodes menu, which joins every name it lists to the engineer's host
// name, lists real nodes only; production nodes reach that menu through
// nodes() once connected.
func (s *Server) homeFace(ctx ssh.Context, id *Identity, c *connState, epmdPort int, dest string) *epmd.Face {
	return &epmd.Face{
		RequestTimeout: s.conf().Limits.ForwardTimeout,
		EPMDPort:       uint16(epmdPort),
		Register:       c.home.register,
		Lookup:         c.home.lookup,
		Names:          c.home.names,
		Observe:        s.observeEpmd(ctx, id, dest),
	}
}

// maxHomeNodes bounds the engineer's own nodes one connection registers.
const maxHomeNodes = 16

// homeRegistry is the engineer's own nodes registered on one SSH
// connection, as a real epmd on their machine would hold them.
type homeRegistry struct {
	mu    sync.Mutex
	nodes []epmd.NameEntry
}

// register takes req's name unless this connection already holds it
// (erl then reports the name as in use, as with a real epmd).
func (h *homeRegistry) register(req *epmd.Alive2Req) (func(), bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.nodes) >= maxHomeNodes || slices.ContainsFunc(h.nodes, func(e epmd.NameEntry) bool { return e.Name == req.Name }) {
		return nil, false
	}
	e := epmd.NameEntry{Name: req.Name, Port: int(req.PortNo)}
	h.nodes = append(h.nodes, e)
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.nodes = slices.DeleteFunc(h.nodes, func(x epmd.NameEntry) bool { return x == e })
	}, true
}

func (h *homeRegistry) lookup(alive string) (uint16, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.nodes {
		if e.Name == alive {
			return uint16(e.Port), true
		}
	}
	return 0, false
}

func (h *homeRegistry) names() []epmd.NameEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.nodes)
}

func mergeDetail(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// openChannel takes a channel slot on the connection.
func (c *connState) openChannel() bool {
	if int(c.channels.Add(1)) > c.srv.conf().Limits.MaxChannelsPerConnection {
		c.channels.Add(-1)
		return false
	}
	c.opened.Add(1)
	c.lastActive.Store(c.srv.now().UnixNano())
	return true
}

// closeChannel releases a slot taken by openChannel.
func (c *connState) closeChannel() {
	c.channels.Add(-1)
	c.lastActive.Store(c.srv.now().UnixNano())
}

// acquireTarget takes a relay session slot for node.
func (s *Server) acquireTarget(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perTarget[node] >= s.conf().Limits.MaxSessionsPerTarget {
		return false
	}
	s.perTarget[node]++
	return true
}

func (s *Server) releaseTarget(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perTarget[node]--; s.perTarget[node] <= 0 {
		delete(s.perTarget, node)
	}
}

// handleOtherChannel refuses every other channel type (x11 and agent
// channels are server-initiated and never opened by beamgate).
func (s *Server) handleOtherChannel(_ *ssh.Server, sc *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	id, _ := identityOf(sc)
	r := s.record(ctx, id, audit.EventChannel, audit.DecisionDeny, "channel type refused")
	r.Op = truncate(newChan.ChannelType(), 64)
	s.aud.Record(ctx, audit.After, r)
	newChan.Reject(gossh.UnknownChannelType, "channel type "+strconv.Quote(r.Op)+" is refused")
}

// epmdReachable asks n's epmd whether n is registered.
func epmdReachable(ctx context.Context, n *config.Node) bool {
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	_, err := epmd.LookupPort(ctx, n.EpmdAddr(), n.Alive)
	return err == nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
