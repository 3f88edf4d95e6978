// Package config owns beamgate's configuration file: its types, the
// defaults Load fills in, path resolution against the file's directory,
// and validation whose every error names the key and the fix. It decides
// nothing at run time beyond who may reach what (Grants, Reachable).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"beamgate/cookies"
	"beamgate/gateway/epmd"
	"beamgate/policy"

	"go.yaml.in/yaml/v3"
	gossh "golang.org/x/crypto/ssh"
)

// maxConfigFile bounds the configuration file size.
const maxConfigFile = 4 << 20

// EpmdPort is the port engineers' nodes ask for node ports on (their
// ssh -L forwards it to the gateway's epmd face).
const EpmdPort = epmd.DefaultPort

// Default limits.
const (
	// DefaultHandshakeTimeout leaves a person time to read and accept the
	// host key on a first login (OpenSSH's LoginGraceTime is 120 s);
	// DefaultMaxUnauthenticated bounds what such slow logins can hold.
	DefaultHandshakeTimeout         = 60 * time.Second
	DefaultMaxUnauthenticated       = 64
	DefaultIdleTimeout              = 30 * time.Minute
	DefaultKeepaliveInterval        = 30 * time.Second
	DefaultMaxChannelsPerConnection = 64
	DefaultMaxConnectionsPerUser    = 8
	DefaultMaxSessionsPerTarget     = 64
	DefaultClusterViewParallel      = 4
	DefaultViewsPerNode             = 4
	DefaultCookieWindow             = 24 * time.Hour
	DefaultEngineerEpmdPort         = 14369
)

// Config is beamgate's configuration file. Load fills in defaults, resolves
// relative paths against the file's directory and validates it.
type Config struct {
	Listen            string        `yaml:"listen"`
	Advertise         string        `yaml:"advertise"` // host:port engineers ssh to, for the recipe; default: the address they reached
	HostKey           string        `yaml:"host_key"`
	GatewaySecretFile string        `yaml:"gateway_secret_file"`
	CookieWindow      time.Duration `yaml:"cookie_window"`
	// EngineerEpmdPort is the local port engineers forward to the epmd
	// face (ssh -L PORT:host:4369, ERL_EPMD_PORT=PORT). It appears in the
	// recipe, and NAMES answers carry it: OTP checks that port.
	EngineerEpmdPort int `yaml:"engineer_epmd_port"`
	// EngineerLoopback is the /16 the recipe takes per-host loopback
	// addresses from (DefaultEngineerLoopback); see Layout.
	EngineerLoopback string              `yaml:"engineer_loopback"`
	Audit            AuditConfig         `yaml:"audit"`
	Cookies          CookiesConfig       `yaml:"cookies"`
	Clusters         map[string]*Cluster `yaml:"clusters"`
	Users            map[string]*User    `yaml:"users"`
	// UserCAKeys are CA keys whose certificates authenticate the users
	// listed under users: (the older, simpler form of UserCAsConfig).
	UserCAKeys []string `yaml:"user_ca_keys"`
	// UserCAsConfig are the CAs whose certificates may also grant roles,
	// so an engineer needs no users: entry.
	UserCAsConfig []*UserCA        `yaml:"user_cas"`
	Roles         map[string]*Role `yaml:"roles"`
	Limits        Limits           `yaml:"limits"`
	Ops           OpsConfig        `yaml:"ops"`
	// BreakGlass configures break-glass shells (roles.NAME.shell).
	BreakGlass BreakGlass `yaml:"break_glass"`
	// ShutdownGrace is how long live sessions may go on after SIGTERM
	// (new connections are refused at once) before they are cut.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`

	// Filled by Validate.
	cas   []*UserCA
	nodes []*Node // every configured node, in cluster-name then list order
}

// AuditConfig says where the audit log lives, how it rotates, how its
// head is checkpointed, and where it is shipped.
type AuditConfig struct {
	Path string `yaml:"path"`
	// Replica names this gateway in checkpoints (several replicas share a
	// Vault); default: the host name.
	Replica string `yaml:"replica"`
	// RotateSize rotates the active file once it reaches this size
	// (default 256MiB; "0" turns size rotation off).
	RotateSize ByteSize `yaml:"rotate_size"`
	// RotateDaily rotates at the first write after UTC midnight (default
	// true).
	RotateDaily *bool `yaml:"rotate_daily"`
	// Keep is how many rotated files are kept (0: all); KeepAge deletes
	// rotated files older than this (0: no age limit). Every deletion is
	// audited first.
	Keep    int           `yaml:"keep"`
	KeepAge time.Duration `yaml:"keep_age"`
	// Checkpoint configures the signed checkpoints of the log's head.
	Checkpoint CheckpointConfig `yaml:"checkpoint"`
	// Ship, when set, copies the log to a second sink (syslog or stdout).
	Ship *ShipConfig `yaml:"ship"`
}

// CookiesConfig selects the production cookie backend.
type CookiesConfig struct {
	Backend string `yaml:"backend"` // "file" (default) or "vault"
	File    string `yaml:"file"`
	// Vault configures backend: vault. Its revocation list is watched by
	// the gateway; `beamgate cookie rotate` and `beamgate offboard` use it.
	Vault cookies.VaultConfig `yaml:"vault"`
}

// Cluster is a set of production nodes sharing a production cookie.
type Cluster struct {
	Nodes []*Node `yaml:"nodes"`
}

// Node is one production node engineers may reach.
type Node struct {
	Name        string `yaml:"name"`         // alive@host, as engineers dial it
	Dial        string `yaml:"dial"`         // where beamgate reaches its epmd: host or host:port
	GatewayPort int    `yaml:"gateway_port"` // the distribution port engineers forward

	Cluster string `yaml:"-"`
	Alive   string `yaml:"-"` // the part before '@'
	Host    string `yaml:"-"` // the part after '@': what engineers' ssh -L names
}

// LongName reports whether the node uses long names (a dotted host), so
// engineers' nodes must be started with -name rather than -sname.
func (n *Node) LongName() bool { return strings.Contains(n.Host, ".") }

// HasKey reports whether wire (a public key in SSH wire format) is one of
// the user's listed keys (filled by Validate).
func (u *User) HasKey(wire []byte) bool {
	return slices.ContainsFunc(u.keys, func(k []byte) bool { return bytes.Equal(k, wire) })
}

// EpmdAddr is the host:port of the node's epmd.
func (n *Node) EpmdAddr() string {
	addr, _ := epmd.Addr(n.Dial)
	return addr
}

// User is one engineer.
type User struct {
	Keys  []string `yaml:"keys"`
	Roles []string `yaml:"roles"`

	keys [][]byte // wire-format public keys, filled by Validate
}

// Role grants clusters under a policy.
type Role struct {
	Clusters []string `yaml:"clusters"`
	Policy   string   `yaml:"policy"` // built-in profile name or a file path
	Mode     string   `yaml:"mode"`   // enforce | audit
	// Shell is what the role may do with break-glass shells on its
	// clusters: "request" or "approve" ("": neither).
	Shell string `yaml:"shell"`

	profile *policy.Profile
	mode    policy.Mode
}

// Limits bound what one engineer can hold open.
type Limits struct {
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// MaxUnauthenticated bounds the connections still in their SSH
	// handshake (not yet logged in) at once; over it, new ones are closed
	// at once (OpenSSH's MaxStartups).
	MaxUnauthenticated       int           `yaml:"max_unauthenticated"`
	IdleTimeout              time.Duration `yaml:"idle_timeout"`
	KeepaliveInterval        time.Duration `yaml:"keepalive_interval"`
	MaxChannelsPerConnection int           `yaml:"max_channels_per_connection"`
	MaxConnectionsPerUser    int           `yaml:"max_connections_per_user"`
	MaxSessionsPerTarget     int           `yaml:"max_sessions_per_target"`
	// ClusterViewParallel bounds how many nodes a cluster-wide view
	// (ssh bastion top CLUSTER) visits at once.
	ClusterViewParallel int `yaml:"cluster_view_parallel"`
	// ViewsPerNode bounds the text views one user runs at once on one
	// node (a top --watch and an info side by side).
	ViewsPerNode int `yaml:"views_per_node"`
	// MaxBufferedPerSession bounds production's output waiting for one
	// slow or stopped engineer before that session is cut; BufferBudget
	// bounds it for the whole gateway (default: a quarter of the
	// machine's memory): over it, the sessions holding the most are cut
	// first. See limits.go.
	MaxBufferedPerSession ByteSize `yaml:"max_buffered_per_session"`
	BufferBudget          ByteSize `yaml:"buffer_budget"`
	// ForwardTimeout bounds a forwarded epmd request and a relayed
	// node's handshake: a silent ssh -L channel is closed after it.
	ForwardTimeout time.Duration `yaml:"forward_timeout"`
}

// Error is one validation problem: the key path, what is wrong, and
// how to fix it.
type Error struct {
	Key     string // e.g. clusters.prismatic.nodes[0].gateway_port
	Problem string
	Fix     string
}

func (e *Error) Error() string {
	if e.Fix == "" {
		return e.Key + ": " + e.Problem
	}
	return e.Key + ": " + e.Problem + "; " + e.Fix
}

// Load reads, defaults, resolves and validates the configuration at
// path. Unknown keys are errors. Validation problems are returned together
// (errors.Join of *Error), each naming its key and fix.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigFile)
	}
	cfg, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse parses and validates configuration YAML; relative paths are
// resolved against dir.
func Parse(data []byte, dir string) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w (the form of each key is in configs/beamgate.example.yaml)", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty configuration; start from configs/beamgate.example.yaml")
	}
	// Unknown keys first, by key path and with the nearest valid key:
	// yaml.v3 would name a Go type.
	if err := checkKeys(&doc, reflect.TypeFor[Config]()); err != nil {
		return nil, err
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration; start from configs/beamgate.example.yaml")
		}
		return nil, typeErrors(err, &doc)
	}
	cfg.resolve(dir)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// resolve fills in defaults and makes relative paths absolute against dir.
func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.HostKey)
	abs(&c.Audit.Path)
	c.resolveAudit(abs)
	c.resolveShip(abs)
	abs(&c.Cookies.File)
	abs(&c.BreakGlass.File)
	abs(&c.Cookies.Vault.CAFile)
	abs(&c.Cookies.Vault.Auth.RoleIDFile)
	abs(&c.Cookies.Vault.Auth.SecretIDFile)
	abs(&c.Cookies.Vault.Auth.TokenFile)
	// With Vault, every replica reads the gateway secret there
	// (cookies.vault.gateway_secret_path); no file is defaulted.
	if c.GatewaySecretFile == "" && c.HostKey != "" && c.Cookies.Backend != "vault" {
		c.GatewaySecretFile = filepath.Join(filepath.Dir(c.HostKey), "gateway_secret")
	}
	abs(&c.GatewaySecretFile)
	if c.Cookies.Backend == "" {
		c.Cookies.Backend = "file"
	}
	if c.EngineerEpmdPort == 0 {
		c.EngineerEpmdPort = DefaultEngineerEpmdPort
	}
	if c.EngineerLoopback == "" {
		c.EngineerLoopback = DefaultEngineerLoopback
	}
	if c.CookieWindow == 0 {
		c.CookieWindow = DefaultCookieWindow
	}
	for _, r := range c.Roles {
		if r != nil && isPolicyPath(r.Policy) {
			abs(&r.Policy)
		}
	}
	l := &c.Limits
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setInt := func(n *int, def int) {
		if *n == 0 {
			*n = def
		}
	}
	setDur(&l.HandshakeTimeout, DefaultHandshakeTimeout)
	setDur(&l.IdleTimeout, DefaultIdleTimeout)
	setDur(&l.KeepaliveInterval, DefaultKeepaliveInterval)
	setInt(&l.MaxUnauthenticated, DefaultMaxUnauthenticated)
	setInt(&l.MaxChannelsPerConnection, DefaultMaxChannelsPerConnection)
	setInt(&l.MaxConnectionsPerUser, DefaultMaxConnectionsPerUser)
	setInt(&l.MaxSessionsPerTarget, DefaultMaxSessionsPerTarget)
	setInt(&l.ClusterViewParallel, DefaultClusterViewParallel)
	setInt(&l.ViewsPerNode, DefaultViewsPerNode)
	c.resolveBudgets()
}

// isPolicyPath mirrors policy.Load: a name with a path separator or a YAML
// extension is a file, anything else a built-in profile.
func isPolicyPath(s string) bool {
	return strings.ContainsRune(s, '/') || strings.HasSuffix(s, ".yaml") || strings.HasSuffix(s, ".yml")
}

// Validate checks the configuration and prepares it for use.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, problem, fix string) {
		errs = append(errs, &Error{Key: key, Problem: problem, Fix: fix})
	}

	if c.Listen == "" {
		bad("listen", "missing", "set the address SSH clients connect to, e.g. 127.0.0.1:2222")
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", fmt.Sprintf("%q is not host:port", c.Listen), "write it like 127.0.0.1:2222 or :2222")
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			bad("advertise", fmt.Sprintf("%q is not host:port", c.Advertise), "write the address engineers ssh to, e.g. bastion.example.com:2222")
		}
	}
	if c.HostKey == "" {
		bad("host_key", "missing", "set a path for the SSH host key, e.g. ./state/ssh_host_ed25519_key (created on first start)")
	}
	if c.Audit.Path == "" {
		bad("audit.path", "missing", "set the audit log file, e.g. ./state/audit.jsonl")
	}
	c.validateAudit(bad)
	c.validateShip(bad)
	c.validateOps(bad)
	switch c.Cookies.Backend {
	case "file":
		if c.Cookies.File == "" {
			bad("cookies.file", "missing", "set the production cookie file (cluster: cookie lines, mode 0600), e.g. ./state/cookies.yaml")
		}
	case "vault":
		validateVault(c.Cookies.Vault, bad)
		if c.GatewaySecretFile != "" {
			path := c.Cookies.Vault.GatewaySecretPath
			if path == "" {
				path = cookies.DefaultGatewaySecretPath
			}
			bad("gateway_secret_file", "not used with cookies.backend: vault",
				"remove it: every replica reads the gateway secret from Vault at "+path+" (cookies.vault.gateway_secret_path), and beamgate cookie rotate-gateway-secret rotates it")
		}
	default:
		bad("cookies.backend", fmt.Sprintf("unknown backend %q", c.Cookies.Backend), "use backend: file or backend: vault")
	}
	if c.CookieWindow < time.Minute {
		bad("cookie_window", fmt.Sprintf("%s is shorter than 1m", c.CookieWindow), "use a duration such as 24h")
	}
	if c.EngineerEpmdPort < 1 || c.EngineerEpmdPort > 65535 {
		bad("engineer_epmd_port", fmt.Sprintf("%d is not a TCP port", c.EngineerEpmdPort), "use a free local port such as 14369")
	}
	c.validateLimits(bad)
	c.validateBudgets(bad)
	c.validateClusters(bad)
	c.validateLayout(bad)
	c.validateRoles(bad)
	c.validateUsers(bad)
	c.validateBreakGlass(bad)
	return errors.Join(errs...)
}

// validateVault checks the cookies.vault block key by key, then lets
// cookies.VaultConfig.Validate catch anything else (the environment's
// VAULT_SKIP_VERIFY and VAULT_TOKEN included).
func validateVault(v cookies.VaultConfig, bad func(key, problem, fix string)) {
	const k = "cookies.vault."
	n := 0
	count := func(key, problem, fix string) { n++; bad(key, problem, fix) }
	switch {
	case v.Address == "":
		count(k+"address", "missing", "set Vault's URL, e.g. https://vault.example.com:8200")
	case !strings.HasPrefix(v.Address, "https://") && !strings.HasPrefix(v.Address, "http://"):
		count(k+"address", fmt.Sprintf("%q is not a URL", v.Address), "write it like https://vault.example.com:8200")
	case strings.HasPrefix(v.Address, "http://") && !v.InsecureSkipVerify:
		count(k+"address", fmt.Sprintf("%q is plain http", v.Address), "use https (with ca_file), or set insecure_skip_verify: true for a local dev Vault only")
	}
	if v.CAFile != "" {
		if _, err := os.Stat(v.CAFile); err != nil {
			count(k+"ca_file", fmt.Sprintf("cannot read %s", v.CAFile), "point it at the PEM bundle of the CA that signed Vault's certificate")
		}
	}
	a := v.Auth
	method := a.Method
	if method == "" {
		method = cookies.AuthToken
		if a.RoleIDFile != "" {
			method = cookies.AuthAppRole
		}
	}
	switch method {
	case cookies.AuthAppRole:
		if a.RoleIDFile == "" {
			count(k+"auth.role_id_file", "missing", "set the file holding the AppRole role id, e.g. /etc/beamgate/vault/role_id")
		}
		if a.SecretIDFile == "" {
			count(k+"auth.secret_id_file", "missing", "set the file holding the AppRole secret id (Vault Agent or your CI writes it)")
		}
	case cookies.AuthToken:
		if a.TokenFile == "" && os.Getenv("VAULT_TOKEN") == "" {
			count(k+"auth", "no credentials", "set role_id_file and secret_id_file (AppRole), or token_file, or export VAULT_TOKEN")
		}
	default:
		count(k+"auth.method", fmt.Sprintf("unknown method %q", a.Method), "use approle or token")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"cache_ttl", v.CacheTTL}, {"stale_limit", v.StaleLimit}, {"timeout", v.Timeout}} {
		if d.v < 0 {
			count(k+d.key, fmt.Sprintf("%s is negative", d.v), "use a positive duration (omit the key for the default)")
		}
	}
	if v.CacheTTL > 0 && v.StaleLimit > 0 && v.StaleLimit < v.CacheTTL {
		count(k+"stale_limit", fmt.Sprintf("%s is shorter than cache_ttl %s", v.StaleLimit, v.CacheTTL), "make stale_limit at least cache_ttl, e.g. 1h")
	}
	if n > 0 {
		return
	}
	if err := v.Validate(); err != nil {
		bad("cookies.vault", strings.TrimPrefix(err.Error(), "cookies: "), "fix the vault block (see the vault example in configs/beamgate.example.yaml)")
	}
}

func (c *Config) validateLimits(bad func(key, problem, fix string)) {
	l := c.Limits
	for _, d := range []struct {
		key string
		v   time.Duration
		min time.Duration
	}{
		{"limits.handshake_timeout", l.HandshakeTimeout, time.Second},
		{"limits.idle_timeout", l.IdleTimeout, time.Second},
		{"limits.keepalive_interval", l.KeepaliveInterval, time.Second},
	} {
		if d.v < d.min {
			bad(d.key, fmt.Sprintf("%s is below %s", d.v, d.min), "use a positive duration such as 30s (omit the key for the default)")
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{
		{"limits.max_unauthenticated", l.MaxUnauthenticated},
		{"limits.max_channels_per_connection", l.MaxChannelsPerConnection},
		{"limits.max_connections_per_user", l.MaxConnectionsPerUser},
		{"limits.max_sessions_per_target", l.MaxSessionsPerTarget},
		{"limits.cluster_view_parallel", l.ClusterViewParallel},
		{"limits.views_per_node", l.ViewsPerNode},
	} {
		if n.v < 1 || n.v > 1<<16 {
			bad(n.key, fmt.Sprintf("%d is out of range", n.v), "use a count between 1 and 65536 (omit the key for the default)")
		}
	}
}

func (c *Config) validateClusters(bad func(key, problem, fix string)) {
	if len(c.Clusters) == 0 {
		bad("clusters", "no clusters configured", "add at least one cluster with its nodes (name, dial, gateway_port)")
		return
	}
	c.nodes = nil
	portOwner := map[string]string{} // host:gateway_port -> key
	nameOwner := map[string]string{}
	for _, cname := range sortedKeys(c.Clusters) {
		cl := c.Clusters[cname]
		ckey := "clusters." + cname
		if !validName(cname) {
			bad(ckey, "cluster name must use letters, digits, '-', '_' or '.'", "rename the cluster")
		}
		if cl == nil || len(cl.Nodes) == 0 {
			bad(ckey+".nodes", "missing", "list the cluster's nodes (name, dial, gateway_port)")
			continue
		}
		for i, n := range cl.Nodes {
			key := fmt.Sprintf("%s.nodes[%d]", ckey, i)
			if n == nil {
				bad(key, "empty node", "give the node a name, dial and gateway_port")
				continue
			}
			n.Cluster = cname
			alive, host, ok := strings.Cut(n.Name, "@")
			switch {
			case n.Name == "":
				bad(key+".name", "missing", "set the node's real name as engineers dial it, e.g. prismatic@prod-01")
			case !ok || !validAlive(alive) || !ValidHost(host):
				bad(key+".name", fmt.Sprintf("%q is not a node name", n.Name), "write it as alive@host, e.g. prismatic@prod-01")
			default:
				n.Alive, n.Host = alive, host
				if prev, dup := nameOwner[n.Name]; dup {
					bad(key+".name", fmt.Sprintf("%q is also configured at %s", n.Name, prev), "list each node once")
				}
				nameOwner[n.Name] = key
			}
			if n.Dial == "" {
				bad(key+".dial", "missing", "set where beamgate reaches the node's epmd: a host (port 4369) or host:port, e.g. 10.0.0.5")
			} else if !validDial(n.Dial) {
				bad(key+".dial", fmt.Sprintf("%q is not a host or host:port", n.Dial), "write a host such as 10.0.0.5 or host:port such as 10.0.0.5:4369")
			}
			switch {
			case n.GatewayPort == 0:
				bad(key+".gateway_port", "missing", "set the distribution port engineers forward, e.g. 4370")
			case n.GatewayPort < 1 || n.GatewayPort > 65535:
				bad(key+".gateway_port", fmt.Sprintf("%d is not a TCP port", n.GatewayPort), "use a port between 1 and 65535, e.g. 4370")
			case n.GatewayPort == EpmdPort:
				bad(key+".gateway_port", "4369 is the epmd port", "pick another port, e.g. 4370")
			case n.Host != "":
				hp := net.JoinHostPort(n.Host, strconv.Itoa(n.GatewayPort))
				if prev, dup := portOwner[hp]; dup {
					bad(key+".gateway_port", fmt.Sprintf("%d is already used for host %s by %s", n.GatewayPort, n.Host, prev),
						"give every node on the same host its own gateway_port")
				}
				portOwner[hp] = key
			}
			c.nodes = append(c.nodes, n)
		}
	}
}

func (c *Config) validateRoles(bad func(key, problem, fix string)) {
	for _, rname := range sortedKeys(c.Roles) {
		r := c.Roles[rname]
		key := "roles." + rname
		if r == nil {
			bad(key, "empty role", "give the role clusters, policy and mode")
			continue
		}
		if len(r.Clusters) == 0 {
			bad(key+".clusters", "missing", "list the clusters this role may reach")
		}
		for i, cl := range r.Clusters {
			if _, ok := c.Clusters[cl]; !ok {
				bad(fmt.Sprintf("%s.clusters[%d]", key, i), fmt.Sprintf("unknown cluster %q", cl),
					"use one of: "+strings.Join(sortedKeys(c.Clusters), ", "))
			}
		}
		if r.Policy == "" {
			bad(key+".policy", "missing", "set a built-in profile such as readonly, or a policy file path")
		} else if p, err := policy.Load(r.Policy); err != nil {
			bad(key+".policy", err.Error(), "use a built-in profile such as readonly, or fix the policy file")
		} else {
			r.profile = p
		}
		m, err := policy.ParseMode(r.Mode)
		if err != nil {
			bad(key+".mode", fmt.Sprintf("unknown mode %q", r.Mode), "use enforce or audit")
		}
		r.mode = m
		switch r.Shell {
		case "", ShellRequest, ShellApprove:
		default:
			bad(key+".shell", fmt.Sprintf("unknown value %q", r.Shell), "use request (may ask for break-glass shells) or approve (may approve them)")
		}
	}
}

func (c *Config) validateUsers(bad func(key, problem, fix string)) {
	c.validateCAs(bad)
	grantingCA := slices.ContainsFunc(c.cas, func(ca *UserCA) bool { return len(ca.AllowedRoles) > 0 })
	if len(c.Users) == 0 && !grantingCA {
		bad("users", "no users configured", "add at least one user with keys and roles, or a user_cas entry whose certificates grant roles (allowed_roles)")
	}
	for _, uname := range sortedKeys(c.Users) {
		u := c.Users[uname]
		key := "users." + uname
		if !validName(uname) {
			bad(key, "user name must use letters, digits, '-', '_' or '.'", "rename the user")
		}
		if u == nil {
			bad(key, "empty user", "give the user keys (or rely on user_ca_keys) and roles")
			continue
		}
		u.keys = nil
		for i, s := range u.Keys {
			k, err := parseKey(s)
			kkey := fmt.Sprintf("%s.keys[%d]", key, i)
			switch {
			case err != nil:
				bad(kkey, "not an OpenSSH public key", "paste a line from the user's .pub file, e.g. ssh-ed25519 AAAA... alice@laptop")
			case isCert(k):
				bad(kkey, "certificates are not listed per user", "add the signing CA to user_cas instead")
			default:
				u.keys = append(u.keys, k.Marshal())
			}
		}
		if len(u.Keys) == 0 && len(c.cas) == 0 {
			bad(key+".keys", "missing", "list the user's public keys, or configure user_cas for certificates")
		}
		if len(u.Roles) == 0 {
			bad(key+".roles", "missing", "give the user at least one role, e.g. [observer]")
		}
		for i, r := range u.Roles {
			if _, ok := c.Roles[r]; !ok {
				bad(fmt.Sprintf("%s.roles[%d]", key, i), fmt.Sprintf("unknown role %q", r),
					"define it under roles: or use one of: "+strings.Join(sortedKeys(c.Roles), ", "))
			}
		}
	}
}

func parseKey(s string) (gossh.PublicKey, error) {
	k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(s))
	return k, err
}

func isCert(k gossh.PublicKey) bool {
	_, ok := k.(*gossh.Certificate)
	return ok
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// validName accepts user, cluster and role names.
func validName(s string) bool { return onlyChars(s, 128, "-_.") }

// validAlive accepts the alive names erl accepts without quoting trouble.
func validAlive(s string) bool { return onlyChars(s, 255, "-_") }

// ValidHost accepts host names (letters, digits, '-', '.').
func ValidHost(s string) bool {
	return onlyChars(s, 253, "-.") && s[0] != '.' && s[0] != '-'
}

// onlyChars reports whether s is non-empty, at most max bytes, and made of
// ASCII letters, digits and the bytes in extra.
func onlyChars(s string, max int, extra string) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return true
}

func validDial(s string) bool {
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		return err == nil && n > 0 && n < 65536 && h != ""
	}
	return !strings.ContainsAny(s, " /:") || net.ParseIP(s) != nil
}
