package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// DefaultRolePrefix marks the certificate principals that grant a role:
// "beamgate-role:observer" grants role observer.
const DefaultRolePrefix = "beamgate-role:"

// DefaultMaxCertValidity is the longest validity a user_cas entry accepts
// when it sets none: short-lived certificates are the point.
const DefaultMaxCertValidity = 24 * time.Hour

// UserCA is a certificate authority engineers' SSH certificates may come
// from, and what its certificates may grant.
type UserCA struct {
	// Name names the CA in audit records, refusals and the banner.
	Name string `yaml:"name"`
	// Key is the CA's public key (an OpenSSH .pub line). Exactly one of
	// Key and VaultMount is set.
	Key string `yaml:"key"`
	// VaultMount is the mount of Vault's SSH secrets engine whose CA key
	// to trust ("ssh"): read from MOUNT/public_key at start and every
	// VaultRefresh, so a CA rotation needs no configuration change.
	// Needs cookies.backend: vault.
	VaultMount string `yaml:"vault_mount"`
	// VaultRefresh is how often the Vault CA key is read again (5m).
	VaultRefresh time.Duration `yaml:"vault_refresh"`
	// RolePrefix marks the principals that grant roles (DefaultRolePrefix).
	RolePrefix string `yaml:"role_prefix"`
	// AllowedRoles are the roles this CA's certificates may grant through
	// role principals. Empty: none, the CA then only vouches for users
	// listed under users:, who keep their configured roles.
	AllowedRoles []string `yaml:"allowed_roles"`
	// MaxCertValidity refuses certificates valid for longer
	// (DefaultMaxCertValidity); "0s" is not accepted, set a duration.
	MaxCertValidity time.Duration `yaml:"max_cert_validity"`
	// MergeUserRoles adds a users: entry's roles to those a certificate
	// grants; without it a certificate that grants roles gets only those.
	MergeUserRoles bool `yaml:"merge_user_roles"`

	key    gossh.PublicKey // parsed Key (nil for a Vault CA)
	legacy bool            // from user_ca_keys: no role principals, no validity cap
}

// PublicKey is the CA's configured key (nil for a Vault CA, whose key the
// gateway reads from Vault).
func (ca *UserCA) PublicKey() gossh.PublicKey { return ca.key }

// GrantsRole reports whether the CA may grant role through a principal.
func (ca *UserCA) GrantsRole(role string) bool { return slices.Contains(ca.AllowedRoles, role) }

// Legacy reports a CA from user_ca_keys: it authenticates users listed
// under users: and grants no roles of its own.
func (ca *UserCA) Legacy() bool { return ca.legacy }

// UserCAs returns every trusted CA: the user_cas entries, then one per
// user_ca_keys line (filled by Validate).
func (c *Config) UserCAs() []*UserCA { return c.cas }

// RolesFor returns the roles a certificate with these principals would be
// granted by ca: each principal starting with ca's prefix names one.
// Principals naming a role that is not defined, or one the CA may not
// grant, are errors.
func (c *Config) RolesFor(ca *UserCA, principals []string) ([]string, error) {
	if ca.legacy {
		return nil, nil
	}
	var roles []string
	for _, p := range principals {
		r, ok := strings.CutPrefix(p, ca.RolePrefix)
		if !ok {
			continue
		}
		if _, defined := c.Roles[r]; !defined {
			return nil, fmt.Errorf("principal %q names role %q, which is not defined under roles", p, r)
		}
		if !ca.GrantsRole(r) {
			return nil, fmt.Errorf("principal %q: CA %s may not grant role %q (its allowed_roles: %s)", p, ca.Name, r, listOrNone(ca.AllowedRoles))
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	return roles, nil
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

func (c *Config) validateCAs(bad func(key, problem, fix string)) {
	c.cas = nil
	seen := map[string]bool{}
	for i, ca := range c.UserCAsConfig {
		key := fmt.Sprintf("user_cas[%d]", i)
		if ca == nil {
			bad(key, "empty entry", "give the CA a name, a key or vault_mount, and allowed_roles")
			continue
		}
		if ca.Name != "" {
			key = "user_cas." + ca.Name
		}
		switch {
		case ca.Name == "":
			bad(key+".name", "missing", "name the CA, e.g. vault or contractors (audit records and refusals use it)")
		case !validName(ca.Name):
			bad(key+".name", "must use letters, digits, '-', '_' or '.'", "rename the CA")
		case seen[ca.Name]:
			bad(key+".name", "used twice", "give each CA its own name")
		}
		seen[ca.Name] = true
		switch {
		case ca.Key != "" && ca.VaultMount != "":
			bad(key, "both key and vault_mount are set", "keep one: key for a fixed CA, vault_mount to read Vault's SSH CA key")
		case ca.Key != "":
			k, err := parseKey(ca.Key)
			switch {
			case err != nil:
				bad(key+".key", "not an OpenSSH public key", "paste the CA's .pub line, e.g. ssh-ed25519 AAAA... ca")
			case isCert(k):
				bad(key+".key", "a certificate cannot be a CA", "paste the CA's public key, not a certificate")
			default:
				ca.key = k
			}
		case ca.VaultMount != "":
			ca.VaultMount = strings.Trim(ca.VaultMount, "/")
			if c.Cookies.Backend != "vault" {
				bad(key+".vault_mount", "needs cookies.backend: vault", "set the cookies.vault block, or paste the CA's key as key:")
			}
			if strings.Contains(ca.VaultMount, "..") || ca.VaultMount == "" {
				bad(key+".vault_mount", fmt.Sprintf("bad mount %q", ca.VaultMount), "use the SSH engine's mount path, e.g. ssh")
			}
		default:
			bad(key, "neither key nor vault_mount is set", "add key: (the CA's .pub line) or vault_mount: ssh")
		}
		if ca.VaultRefresh == 0 {
			ca.VaultRefresh = 5 * time.Minute
		}
		if ca.VaultRefresh < time.Second {
			bad(key+".vault_refresh", fmt.Sprintf("%s is below 1s", ca.VaultRefresh), "use a duration such as 5m")
		}
		if ca.RolePrefix == "" {
			ca.RolePrefix = DefaultRolePrefix
		}
		if ca.MaxCertValidity == 0 {
			ca.MaxCertValidity = DefaultMaxCertValidity
		}
		if ca.MaxCertValidity < time.Minute {
			bad(key+".max_cert_validity", fmt.Sprintf("%s is below 1m", ca.MaxCertValidity), "use a duration such as 12h")
		}
		for j, r := range ca.AllowedRoles {
			if _, ok := c.Roles[r]; !ok {
				bad(fmt.Sprintf("%s.allowed_roles[%d]", key, j), fmt.Sprintf("unknown role %q", r),
					"define it under roles: or use one of: "+strings.Join(sortedKeys(c.Roles), ", "))
			}
		}
		c.cas = append(c.cas, ca)
	}
	for i, s := range c.UserCAKeys {
		k, err := parseKey(s)
		key := fmt.Sprintf("user_ca_keys[%d]", i)
		switch {
		case err != nil:
			bad(key, "not an OpenSSH public key", "paste the CA's .pub line, e.g. ssh-ed25519 AAAA... ca")
		case isCert(k):
			bad(key, "a certificate cannot be a CA", "paste the CA's public key, not a certificate")
		default:
			c.cas = append(c.cas, &UserCA{Name: key, Key: s, key: k, legacy: true})
		}
	}
}
