package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// HomeHost is the destination host of the recipe's first forward
// (ssh -L PORT:beamgate:4369): the epmd face the engineer's own node
// registers with and asks net_adm:names() of. It answers with the
// engineer's own nodes only, so observer's Nodes menu (built from
// net_adm:names() on the engineer's host) never lists a production name
// on the engineer's host. No node may use it as its host.
const HomeHost = "beamgate"

// DefaultEngineerLoopback is the block the recipe takes engineers'
// per-host loopback addresses from: 127.77.C.H, C the cluster's place
// among the configured clusters and H the host's place in its cluster,
// both from 1. It avoids 127.0.0.0/16, where Debian and Ubuntu map the
// machine's own host name (127.0.1.1).
const DefaultEngineerLoopback = "127.77.0.0/16"

// maxLayout bounds clusters and hosts per cluster: the third and fourth
// octets of the engineer loopback block, from 1 to 254.
const maxLayout = 254

// Local is where a production node appears on an engineer's machine
// under the recipe: its host's own loopback address, the cluster's local
// epmd port there and on 127.0.0.1, and the distribution port.
type Local struct {
	Addr     string // 127.77.C.H
	EpmdPort int    // the cluster's ERL_EPMD_PORT
	DistPort int    // the node's gateway port
}

// ClusterLayout is a cluster's recipe layout: its hosts in configuration
// order, each with its loopback address, and the cluster's epmd port.
type ClusterLayout struct {
	Cluster  string
	EpmdPort int
	Hosts    []HostLayout
}

// HostLayout is one production host of a cluster on the engineer's
// machine.
type HostLayout struct {
	Host  string
	Addr  string
	Nodes []*Node
}

// Layout returns cluster's recipe layout, or false when there is no
// such cluster. The layout depends only on the configuration, so every
// replica prints the same recipe and the same engineer's saved inetrc
// stays valid until clusters or hosts are added before it.
func (c *Config) Layout(cluster string) (ClusterLayout, bool) {
	idx := slices.Index(sortedKeys(c.Clusters), cluster)
	if idx < 0 || c.Clusters[cluster] == nil {
		return ClusterLayout{}, false
	}
	l := ClusterLayout{Cluster: cluster, EpmdPort: c.EngineerEpmdPort + idx}
	base := c.loopbackBase()
	for _, n := range c.Clusters[cluster].Nodes {
		if n == nil || n.Host == "" {
			continue
		}
		i := slices.IndexFunc(l.Hosts, func(h HostLayout) bool { return strings.EqualFold(h.Host, n.Host) })
		if i < 0 {
			b := base.As4()
			b[2], b[3] = byte(idx+1), byte(len(l.Hosts)+1)
			l.Hosts = append(l.Hosts, HostLayout{Host: n.Host, Addr: netip.AddrFrom4(b).String()})
			i = len(l.Hosts) - 1
		}
		l.Hosts[i].Nodes = append(l.Hosts[i].Nodes, n)
	}
	return l, true
}

// LocalOf is where n appears on an engineer's machine.
func (c *Config) LocalOf(n *Node) Local {
	l, _ := c.Layout(n.Cluster)
	for _, h := range l.Hosts {
		if strings.EqualFold(h.Host, n.Host) {
			return Local{Addr: h.Addr, EpmdPort: l.EpmdPort, DistPort: n.GatewayPort}
		}
	}
	return Local{}
}

// Addrs is the loopback addresses of the layout's hosts.
func (l ClusterLayout) Addrs() []string {
	out := make([]string, len(l.Hosts))
	for i, h := range l.Hosts {
		out[i] = h.Addr
	}
	return out
}

// Nodes is every node of the layout, host by host.
func (l ClusterLayout) Nodes() []*Node {
	var out []*Node
	for _, h := range l.Hosts {
		out = append(out, h.Nodes...)
	}
	return out
}

// loopbackBase is the engineer loopback block's first address.
func (c *Config) loopbackBase() netip.Addr {
	p, err := netip.ParsePrefix(c.EngineerLoopback)
	if err != nil {
		p = netip.MustParsePrefix(DefaultEngineerLoopback)
	}
	return p.Masked().Addr()
}

// validateLayout checks that every cluster's recipe can be laid out on an
// engineer's machine without collisions.
func (c *Config) validateLayout(bad func(key, problem, fix string)) {
	p, err := netip.ParsePrefix(c.EngineerLoopback)
	switch {
	case err != nil:
		bad("engineer_loopback", fmt.Sprintf("%q is not an address block", c.EngineerLoopback), "write a /16 inside 127.0.0.0/8, e.g. "+DefaultEngineerLoopback)
	case !p.Addr().Is4() || p.Bits() != 16 || !netip.MustParsePrefix("127.0.0.0/8").Contains(p.Addr()):
		bad("engineer_loopback", fmt.Sprintf("%s is not a /16 inside 127.0.0.0/8", p), "use a loopback /16 such as "+DefaultEngineerLoopback)
	case p.Masked().Addr().As4()[1] == 0:
		bad("engineer_loopback", fmt.Sprintf("%s holds 127.0.0.1 and 127.0.1.1", p), "use another loopback /16 such as "+DefaultEngineerLoopback)
	}
	names := sortedKeys(c.Clusters)
	if len(names) > maxLayout {
		bad("clusters", fmt.Sprintf("%d clusters; the recipe lays out at most %d", len(names), maxLayout), "split the configuration across gateways")
	}
	if last := c.EngineerEpmdPort + len(names) - 1; last > 65535 {
		bad("engineer_epmd_port", fmt.Sprintf("%d clusters need local epmd ports %d..%d", len(names), c.EngineerEpmdPort, last), "use a lower port such as 14369")
	}
	largest := 0
	for _, cname := range names {
		cl := c.Clusters[cname]
		if cl == nil {
			continue
		}
		largest = max(largest, len(cl.Nodes))
		var first *Node
		for i, n := range cl.Nodes {
			if n == nil || n.Host == "" {
				continue
			}
			key := fmt.Sprintf("clusters.%s.nodes[%d]", cname, i)
			if strings.EqualFold(n.Host, HomeHost) {
				bad(key+".name", fmt.Sprintf("host %q is reserved for the engineer's own epmd in the recipe", HomeHost), "use the node's real host name")
			}
			if lo, hi := c.EngineerEpmdPort, c.EngineerEpmdPort+len(names)-1; n.GatewayPort >= lo && n.GatewayPort <= hi {
				bad(key+".gateway_port", fmt.Sprintf("%d is one of the engineers' local epmd ports (%d..%d: engineer_epmd_port, one per cluster)", n.GatewayPort, lo, hi),
					"pick another gateway_port, or move engineer_epmd_port")
			}
			if first == nil {
				first = n
			} else if first.LongName() != n.LongName() {
				bad(key+".name", fmt.Sprintf("%q mixes short and long names in cluster %s", n.Name, cname),
					"Erlang cannot connect one node to both: give every node of a cluster a dotted host (long names) or none")
			}
		}
		if l, ok := c.Layout(cname); ok && len(l.Hosts) > maxLayout {
			bad("clusters."+cname, fmt.Sprintf("%d hosts; the recipe lays out at most %d per cluster", len(l.Hosts), maxLayout), "split the cluster")
		}
	}
	// One ssh -N holds the engineer's registration, one channel per
	// relayed node and short-lived epmd lookups.
	if need := largest + 4; c.Limits.MaxChannelsPerConnection < need {
		bad("limits.max_channels_per_connection", fmt.Sprintf("%d is too few for a cluster of %d nodes, whose recipe holds %d channels open on one connection",
			c.Limits.MaxChannelsPerConnection, largest, largest+1), fmt.Sprintf("raise it to at least %d (omit the key for the default)", need))
	}
}
