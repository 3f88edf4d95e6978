package gateway

import (
	"beamgate/gateway/config"
	"beamgate/internal/beamtest"
	"strings"
	"testing"
)

// FuzzDecideForward checks the open-proxy invariant: whatever host and
// port an engineer asks for, a channel is allowed only to the host of a
// node the user may reach, on 4369 or that node's gateway port.
func FuzzDecideForward(f *testing.F) {
	cfg, err := config.Parse([]byte(beamtest.ExampleConfig), "/etc/beamgate")
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{}
	s.cfgp.Store(cfg)
	f.Add("alice", "prod-01", uint32(4369))
	f.Add("alice", "prod-01", uint32(4370))
	f.Add("alice", "PROD-01", uint32(4370))
	f.Add("alice", "prod-01", uint32(22))
	f.Add("alice", "10.0.0.5", uint32(4370))
	f.Add("alice", "example.com", uint32(80))
	f.Add("mallory", "prod-01", uint32(4369))
	f.Add("alice", "prod-01\x00", uint32(4370))
	f.Add("alice", "beamgate", uint32(14369))
	f.Add("alice", "prod-01", uint32(14369))
	f.Fuzz(func(t *testing.T, user, host string, port uint32) {
		var roles []string
		if u := s.conf().Users[user]; u != nil {
			roles = u.Roles
		}
		d := s.decideForward(roles, host, port)
		if d.kind == "" {
			if d.deny == "" {
				t.Fatal("refusal without a reason")
			}
			return
		}
		if user != "alice" || !strings.EqualFold(host, "prod-01") && !strings.EqualFold(host, config.HomeHost) {
			t.Fatalf("allowed %s to %s:%d", user, host, port)
		}
		switch d.kind {
		case "epmd":
			// 4369, or the cluster's local epmd port (the only cluster's: 14369).
			if port != 4369 && port != 14369 || !strings.EqualFold(host, "prod-01") {
				t.Fatalf("epmd face on %s:%d", host, port)
			}
		case "home":
			if port != 14369 || !strings.EqualFold(host, config.HomeHost) {
				t.Fatalf("home face on %s:%d", host, port)
			}
		case "relay":
			if port != 4370 || d.node == nil || d.node.Name != "prismatic@prod-01" || d.grant.Profile == nil {
				t.Fatalf("relay to %+v on port %d", d.node, port)
			}
		default:
			t.Fatalf("unknown kind %q", d.kind)
		}
	})
}

// FuzzParseConfig: arbitrary configuration text never panics, and
// anything accepted has every node named and ported.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(beamtest.ExampleConfig))
	f.Add([]byte("listen: [\n"))
	f.Add([]byte("clusters: {a: {nodes: [{name: a@b, dial: 'x:1', gateway_port: 70000}]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		cfg, err := config.Parse(data, "/etc/beamgate")
		if err != nil {
			return
		}
		for _, n := range cfg.Nodes() {
			if n.Alive == "" || n.Host == "" || n.GatewayPort < 1 || n.GatewayPort > 65535 || n.GatewayPort == 4369 {
				t.Fatalf("accepted node %+v", n)
			}
		}
	})
}
