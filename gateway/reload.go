package gateway

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"beamgate/audit"
	"beamgate/gateway/config"
	"beamgate/gateway/relay"

	"go.uber.org/zap"
	gossh "golang.org/x/crypto/ssh"
)

// ReloadResult is what a configuration reload did.
type ReloadResult struct {
	ConnectionsCut int      // SSH connections of users, keys or CAs removed
	SessionsKept   int      // relayed sessions that go on (under the new policy)
	SessionsCut    int      // relayed sessions no longer allowed
	NeedsRestart   []string // changed keys that only a restart applies
}

// Reload puts cfg (loaded and validated) in force without a restart:
// logins, forwards, views and recipes use it at once; live SSH
// connections whose user, key or certificate authority is gone are cut;
// relayed sessions whose user, node or cluster grant is gone are ended,
// and the others take their role's new policy from their next message.
// Keys that cannot change live are reported, not applied. Every cut and
// the reload itself are audited.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) ReloadResult {
	start := time.Now()
	old := s.conf()
	res := ReloadResult{NeedsRestart: needsRestart(old, cfg)}
	s.cfgp.Store(cfg)

	// SSH connections: re-authorise each identity against cfg.
	s.mu.Lock()
	type cut struct {
		c      *connState
		reason string
	}
	var cuts []cut
	rolesBySession := map[string][]string{} // SSH session id -> the roles its identity holds under cfg
	cutWhy := map[string]string{}           // SSH session id -> why its connection is cut
	for c, id := range s.live {
		roles, why := s.stillAllowed(cfg, id)
		if why != "" {
			cuts = append(cuts, cut{c, why})
			cutWhy[sessionOf(c.ctx)] = why
			continue
		}
		id.setRoles(roles)
		rolesBySession[sessionOf(c.ctx)] = roles
	}
	s.mu.Unlock()
	for _, k := range cuts {
		if sc := serverConnOf(k.c.ctx); sc != nil {
			k.c.auditConn(sc, audit.EventDisconnect, audit.DecisionDeny, "configuration reload: "+k.reason)
		}
		k.c.netConn.Close()
	}
	res.ConnectionsCut = len(cuts)

	// Relayed sessions: the user, the node and the cluster grant must
	// still be there; the policy may have changed.
	res.SessionsKept, res.SessionsCut = s.opts.Relay.Reconcile(func(eng relay.Engineer, t relay.Target) relay.Keep {
		roles, ok := rolesBySession[eng.Session]
		if !ok {
			why, cut := cutWhy[eng.Session]
			if !cut {
				why = "user " + eng.User + " is no longer logged in"
			}
			return relay.Keep{Reason: "configuration reload: " + why}
		}
		return sessionVerdict(cfg, eng, t, roles)
	})

	r := &audit.Record{Event: audit.EventConfigReload, Decision: audit.DecisionInfo,
		Detail: map[string]string{
			"connections_cut": fmt.Sprint(res.ConnectionsCut), "sessions_kept": fmt.Sprint(res.SessionsKept),
			"sessions_cut": fmt.Sprint(res.SessionsCut), "users": fmt.Sprint(len(cfg.Users)), "nodes": fmt.Sprint(len(cfg.Nodes())),
			"took": time.Since(start).String(), // deciding every connection and session; cut ones end right after
		}}
	if len(res.NeedsRestart) > 0 {
		r.Detail["needs_restart"] = strings.Join(res.NeedsRestart, ",")
	}
	s.aud.Record(ctx, audit.After, r)
	s.log.Info("configuration reloaded", zap.Int("connections_cut", res.ConnectionsCut), zap.Int("sessions_kept", res.SessionsKept),
		zap.Int("sessions_cut", res.SessionsCut), zap.Strings("needs_restart", res.NeedsRestart))
	return res
}

// stillAllowed decides id again under cfg: the roles it holds then, or
// why it may no longer be logged in: its user is gone, its key is no
// longer listed, or its certificate is no longer accepted (its CA gone,
// or a role it grants no longer defined or allowed).
func (s *Server) stillAllowed(cfg *config.Config, id *Identity) (roles []string, why string) {
	if id.Cert {
		c, ok := id.key.(*gossh.Certificate)
		if !ok {
			return nil, "certificate missing"
		}
		a := &authenticator{cfg: func() *config.Config { return cfg }, clock: s.now, vaultKeys: s.auth.vaultKeys}
		g, err := a.checkCert(cfg, id.User, c)
		if err != nil {
			return nil, "certificate no longer accepted: " + err.Error()
		}
		return g.roles, ""
	}
	u := cfg.Users[id.User]
	switch {
	case u == nil:
		return nil, "user " + id.User + " was removed"
	case id.key != nil && !u.HasKey(id.key.Marshal()):
		return nil, "the key " + id.Fingerprint + " was removed from user " + id.User
	}
	return u.Roles, ""
}

// sessionVerdict decides one relayed session under cfg, for an engineer
// whose identity holds roles.
func sessionVerdict(cfg *config.Config, eng relay.Engineer, t relay.Target, roles []string) relay.Keep {
	var node *config.Node
	for _, n := range cfg.Nodes() {
		if n.Name == t.Name && n.Cluster == t.Cluster {
			node = n
		}
	}
	if node == nil {
		return relay.Keep{Reason: "configuration reload: node " + t.Name + " is no longer configured in cluster " + t.Cluster}
	}
	if node.Dial != t.Dial || node.GatewayPort != t.GatewayPort {
		return relay.Keep{Reason: "configuration reload: node " + t.Name + " moved (dial or gateway_port changed)"}
	}
	g, ok := cfg.GrantsFor(roles)[t.Cluster]
	if !ok {
		return relay.Keep{Reason: "configuration reload: user " + eng.User + " may no longer reach cluster " + t.Cluster}
	}
	return relay.Keep{OK: true, Profile: g.Profile, Mode: g.Mode}
}

// needsRestart lists the keys whose change a reload does not apply.
func needsRestart(old, cfg *config.Config) []string {
	var out []string
	for key, same := range map[string]bool{
		"listen":                          old.Listen == cfg.Listen,
		"host_key":                        old.HostKey == cfg.HostKey,
		"gateway_secret_file":             old.GatewaySecretFile == cfg.GatewaySecretFile,
		"cookie_window":                   old.CookieWindow == cfg.CookieWindow,
		"audit":                           reflect.DeepEqual(old.Audit, cfg.Audit),
		"cookies":                         reflect.DeepEqual(old.Cookies, cfg.Cookies),
		"limits.handshake_timeout":        old.Limits.HandshakeTimeout == cfg.Limits.HandshakeTimeout,
		"limits.keepalive_interval":       old.Limits.KeepaliveInterval == cfg.Limits.KeepaliveInterval,
		"limits.views_per_node":           old.Limits.ViewsPerNode == cfg.Limits.ViewsPerNode,
		"limits.max_buffered_per_session": old.Limits.MaxBufferedPerSession == cfg.Limits.MaxBufferedPerSession,
		"limits.buffer_budget":            old.Limits.BufferBudget == cfg.Limits.BufferBudget,
		"ops":                             reflect.DeepEqual(old.Ops, cfg.Ops),
	} {
		if !same {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out
}
