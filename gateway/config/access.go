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

// Grants returns the clusters a users: entry's roles reach, and the
// granting role (nil for a user without an entry).
func (c *Config) Grants(user string) map[string]Grant {
	u := c.Users[user]
	if u == nil {
		return nil
	}
	return c.GrantsFor(u.Roles)
}

// GrantsFor returns the clusters roles reach and the granting role: the
// first of roles, in order, that names the cluster. Roles that are not
// defined grant nothing.
func (c *Config) GrantsFor(roles []string) map[string]Grant {
	out := map[string]Grant{}
	for _, rname := range roles {
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

// ReachableFor returns the nodes roles reach, in configuration order.
func (c *Config) ReachableFor(roles []string) []*Node {
	g := c.GrantsFor(roles)
	var out []*Node
	for _, n := range c.nodes {
		if _, ok := g[n.Cluster]; ok {
			out = append(out, n)
		}
	}
	return out
}

// ValidUserName reports whether name may be a beamgate user name (the
// SSH user a certificate logs in as without a users: entry, too).
func ValidUserName(name string) bool { return validName(name) }

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
