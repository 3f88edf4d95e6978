package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"time"

	"beamgate/cookies"
	"beamgate/policy"
)

// Values of roles.NAME.shell.
const (
	ShellRequest = "request"
	ShellApprove = "approve"
)

// BreakGlass configures break-glass shells.
type BreakGlass struct {
	// MaxDuration caps a grant (policy.DefaultShellMax, 4h).
	MaxDuration time.Duration `yaml:"max_duration"`
	// Approvals is how many other engineers must approve (1).
	Approvals int `yaml:"approvals"`
	// Webhook, when set, receives a JSON POST for every new request,
	// approval, denial and revocation (a chat or paging tool).
	Webhook string `yaml:"webhook"`
	// File keeps requests and grants with cookies.backend: file
	// (default: break-glass.json beside the audit log). With Vault they
	// are at cookies.vault.kv_mount/VaultPath, shared by every replica.
	File      string `yaml:"file"`
	VaultPath string `yaml:"vault_path"`
}

func (c *Config) validateBreakGlass(bad func(key, problem, fix string)) {
	b := &c.BreakGlass
	if b.MaxDuration == 0 {
		b.MaxDuration = policy.DefaultShellMax
	}
	if b.MaxDuration < time.Minute || b.MaxDuration > 24*time.Hour {
		bad("break_glass.max_duration", fmt.Sprintf("%s is not between 1m and 24h", b.MaxDuration), "use a duration such as 4h")
	}
	if b.Approvals == 0 {
		b.Approvals = 1
	}
	if b.Approvals < 1 || b.Approvals > 5 {
		bad("break_glass.approvals", fmt.Sprintf("%d is not between 1 and 5", b.Approvals), "use 1 (one other engineer) or 2")
	}
	if b.Webhook != "" {
		u, err := url.Parse(b.Webhook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("break_glass.webhook", "not an http(s) URL", "use e.g. https://chat.example.com/hooks/beamgate")
		}
	}
	if b.File == "" && c.Audit.Path != "" {
		b.File = filepath.Join(filepath.Dir(c.Audit.Path), "break-glass.json")
	}
	if b.VaultPath == "" {
		b.VaultPath = cookies.DefaultShellsPath
	}
}

// ShellRight reports whether roles may do what ("request" or "approve")
// with shells on cluster: one of them names the cluster and has
// shell: what.
func (c *Config) ShellRight(roles []string, cluster, what string) bool {
	for _, rn := range roles {
		if r := c.Roles[rn]; r != nil && r.Shell == what && slices.Contains(r.Clusters, cluster) {
			return true
		}
	}
	return false
}

// NodeByName returns the configured node named name.
func (c *Config) NodeByName(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}
