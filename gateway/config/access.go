package config

import (
	"slices"
	"strings"

	"beamgate/policy"
)

// Grant is how a user reaches a cluster: through the first of the user's
// roles (in the order listed) that names the cluster.
type Grant struct {
	Role    string
	Profile *policy.Profile
	Mode    policy.Mode
}

// Grants returns the clusters user may reach and the granting role.
func (c *Config) Grants(user string) map[string]Grant {
	u := c.Users[user]
	if u == nil {
		return nil
	}
	out := map[string]Grant{}
	for _, rname := range u.Roles {
		r := c.Roles[rname]
		if r == nil {
			continue
		}
		for _, cl := range r.Clusters {
			if _, seen := out[cl]; !seen {
				out[cl] = Grant{Role: rname, Profile: r.profile, Mode: r.mode}
			}
		}
	}
	return out
}

// Reachable returns the nodes user may reach, in configuration order.
func (c *Config) Reachable(user string) []*Node {
	g := c.Grants(user)
	var out []*Node
	for _, n := range c.nodes {
		if _, ok := g[n.Cluster]; ok {
			out = append(out, n)
		}
	}
	return out
}

// Nodes returns every configured node.
func (c *Config) Nodes() []*Node { return slices.Clone(c.nodes) }

// NodesOnHost filters nodes to those whose name's host part is host.
// Host names compare case-insensitively, as DNS names do.
func NodesOnHost(nodes []*Node, host string) []*Node {
	var out []*Node
	for _, n := range nodes {
		if strings.EqualFold(n.Host, host) {
			out = append(out, n)
		}
	}
	return out
}

// Hosts returns the distinct host parts of nodes, in order.
func Hosts(nodes []*Node) []string {
	var out []string
	for _, n := range nodes {
		if !slices.ContainsFunc(out, func(h string) bool { return strings.EqualFold(h, n.Host) }) {
			out = append(out, n.Host)
		}
	}
	return out
}
