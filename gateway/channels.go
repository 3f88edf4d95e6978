package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
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
	kind  string       // "epmd" or "relay"; "" when refused
	host  string       // the destination host as the engineer named it
	node  *config.Node // the relay target
	on    []*config.Node
	deny  string // refusal reason
	grant config.Grant
}

// decideForward decides a direct-tcpip destination for user. Only the
// epmd port and the gateway ports of nodes user may reach, on those nodes'
// hosts, are allowed; everything else is refused: beamgate is never an
// open proxy.
func (s *Server) decideForward(user, host string, port uint32) forward {
	f := forward{host: host}
	on := config.NodesOnHost(s.cfg.Reachable(user), host)
	if len(on) == 0 {
		f.deny = fmt.Sprintf("%s is not the host of a node you may reach", host)
		return f
	}
	f.on = on
	if port == config.EpmdPort {
		f.kind = "epmd"
		return f
	}
	for _, n := range on {
		if uint32(n.GatewayPort) == port {
			f.kind, f.node = "relay", n
			f.grant = s.cfg.Grants(user)[n.Cluster]
			return f
		}
	}
	f.deny = fmt.Sprintf("port %d on %s is neither epmd (4369) nor the gateway port of a node you may reach", port, host)
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

	f := s.decideForward(id.User, p.DestAddr, p.DestPort)
	if f.kind == "" {
		deny(gossh.Prohibited, f.deny, f)
		return
	}
	c := stateOf(ctx)
	if !c.openChannel() {
		deny(gossh.ResourceShortage, fmt.Sprintf("too many channels on this connection (limit %d)", s.cfg.Limits.MaxChannelsPerConnection), f)
		return
	}
	release := c.closeChannel
	if f.kind == "relay" {
		if !s.acquireTarget(f.node.Name) {
			release()
			deny(gossh.ResourceShortage, fmt.Sprintf("too many sessions to %s (limit %d)", f.node.Name, s.cfg.Limits.MaxSessionsPerTarget), f)
			return
		}
		release = func() { s.releaseTarget(f.node.Name); c.closeChannel() }
	}

	r := s.record(ctx, id, audit.EventForward, audit.DecisionAllow, "")
	r.Dest = dest
	if f.node != nil {
		r.Target, r.Cluster = f.node.Name, f.node.Cluster
	} else {
		r.Detail = mergeDetail(r.Detail, "service", "epmd")
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
	defer conn.Close()

	switch f.kind {
	case "epmd":
		err = s.faceFor(ctx, id, f).Serve(chCtx, conn)
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
		Roles:      append([]string(nil), s.cfg.Users[id.User].Roles...),
		Session:    sessionOf(ctx),
		KeyID:      id.KeyID,
		CertSerial: id.CertSerial,
		SourceAddr: sourceAddr(sc.RemoteAddr()),
		Cookies:    s.opts.Gateway.Accepted(id.User, s.now()),
		Profile:    g.Profile,
		Mode:       g.Mode,
	}
}

// faceFor builds the epmd face an engineer sees on one host: the nodes
// there the engineer may reach, at their gateway ports.
func (s *Server) faceFor(ctx ssh.Context, id *Identity, f forward) *epmd.Face {
	on := f.on
	return &epmd.Face{
		EPMDPort: uint16(s.cfg.EngineerEpmdPort),
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
		Observe: func(req epmd.Request, outcome string) {
			decision := audit.DecisionInfo
			switch outcome {
			case epmd.OutcomeAnswered:
				decision = audit.DecisionAllow
			case epmd.OutcomeNotFound, epmd.OutcomeRefused:
				decision = audit.DecisionDeny
			}
			r := s.record(ctx, id, audit.EventEpmd, decision, outcome)
			r.Dest = net.JoinHostPort(f.host, strconv.Itoa(config.EpmdPort))
			r.Op = req.String()
			if pp, ok := req.(*epmd.PortPlease2Req); ok {
				r.Detail = mergeDetail(r.Detail, "alive", pp.Name)
			}
			// The face answers from configuration, never from production,
			// and refuses whatever it does not know: the record follows.
			s.aud.Record(ctx, audit.After, r)
		},
	}
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
	if int(c.channels.Add(1)) > c.srv.cfg.Limits.MaxChannelsPerConnection {
		c.channels.Add(-1)
		return false
	}
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
	if s.perTarget[node] >= s.cfg.Limits.MaxSessionsPerTarget {
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
