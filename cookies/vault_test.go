package cookies

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVaultConfigYAML(t *testing.T) {
	src := `
address: https://vault.example:8200
ca_file: /etc/beamgate/vault-ca.pem
auth:
  method: approle
  role_id_file: /run/beamgate/role_id
  secret_id_file: /run/beamgate/secret_id
kv_mount: kv
path_prefix: /ops/beamgate/clusters/
cache_ttl: 30s
stale_limit: 2h
revocations_path: ops/beamgate/revocations
`
	var c VaultConfig
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	c = c.withDefaults()
	if c.CacheTTL != 30*time.Second || c.StaleLimit != 2*time.Hour || c.PathPrefix != "ops/beamgate/clusters" ||
		c.Auth.Method != AuthAppRole || c.Auth.Mount != "approle" || c.RotationsPath != DefaultRotationsPath {
		t.Errorf("decoded config = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestVaultConfigValidate(t *testing.T) {
	tok := writeFile(t, "token", "hvs.x\n")
	base := VaultConfig{Address: "https://127.0.0.1:8200", Auth: VaultAuth{Method: AuthToken, TokenFile: tok}}
	if err := base.Validate(); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for name, tt := range map[string]struct {
		mod  func(*VaultConfig)
		want string
	}{
		"no address":     {func(c *VaultConfig) { c.Address = "" }, "address is required"},
		"plain http":     {func(c *VaultConfig) { c.Address = "http://vault:8200" }, "plain http"},
		"unknown method": {func(c *VaultConfig) { c.Auth.Method = "ldap" }, "unknown vault auth method"},
		"approle files":  {func(c *VaultConfig) { c.Auth = VaultAuth{Method: AuthAppRole, RoleIDFile: "x"} }, "secret_id_file"},
		"dotdot prefix":  {func(c *VaultConfig) { c.PathPrefix = "a/../b" }, "bad vault path"},
	} {
		c := base
		tt.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want %q", name, err, tt.want)
		}
	}

	t.Setenv("VAULT_SKIP_VERIFY", "true")
	if err := base.Validate(); err == nil || !strings.Contains(err.Error(), "VAULT_SKIP_VERIFY") {
		t.Errorf("VAULT_SKIP_VERIFY without insecure_skip_verify: Validate = %v", err)
	}
	insecure := base
	insecure.InsecureSkipVerify = true
	if err := insecure.Validate(); err != nil {
		t.Errorf("VAULT_SKIP_VERIFY with insecure_skip_verify: %v", err)
	}
}

// The client is built from the configuration: environment variables that
// would redirect traffic or weaken TLS have no effect.
func TestVaultClientIgnoresEnvironment(t *testing.T) {
	t.Setenv("VAULT_AGENT_ADDR", "https://203.0.113.1:8200")
	t.Setenv("VAULT_PROXY_ADDR", "http://203.0.113.2:3128")
	t.Setenv("VAULT_ADDR", "https://203.0.113.3:8200")
	t.Setenv("VAULT_TLS_SERVER_NAME", "evil.example")
	t.Setenv("VAULT_TOKEN", "hvs.from-env")
	t.Setenv("VAULT_NAMESPACE", "other")
	c, err := newVaultClient(VaultConfig{Address: "https://127.0.0.1:8200"}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if c.Address() != "https://127.0.0.1:8200" {
		t.Errorf("address = %q", c.Address())
	}
	if c.Token() != "" || c.Namespace() != "" {
		t.Errorf("token/namespace from the environment kept: %q %q", c.Token(), c.Namespace())
	}
	tr := c.CloneConfig().HttpClient.Transport.(*http.Transport)
	if tr.Proxy != nil {
		t.Error("proxy from the environment kept")
	}
	if tr.TLSClientConfig.InsecureSkipVerify || tr.TLSClientConfig.ServerName != "" {
		t.Errorf("TLS config weakened: skip=%v server name=%q", tr.TLSClientConfig.InsecureSkipVerify,
			tr.TLSClientConfig.ServerName)
	}
}

func TestVaultClientCAFile(t *testing.T) {
	if _, err := newVaultClient(VaultConfig{Address: "https://x:1", CAFile: writeFile(t, "ca.pem", "nope")}.withDefaults()); err == nil ||
		!strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA file: %v", err)
	}
}

// An unreachable Vault with nothing cached: the error says so, names the
// refusal, and wraps ErrVaultUnreachable.
func TestVaultStoreUnreachableWithoutCache(t *testing.T) {
	tok := writeFile(t, "token", "hvs.test\n")
	cfg := VaultConfig{Address: "https://127.0.0.1:1", Auth: VaultAuth{TokenFile: tok}, MaxRetries: -1}.withDefaults()
	client, err := newVaultClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("hvs.test")
	s := &VaultStore{cfg: cfg, client: client, kv: client.KVv2(cfg.KVMount), log: nopLogger(), now: time.Now,
		cache: map[string]*clusterEntry{}}
	_, err = s.ProductionCookie(context.Background(), "prismatic", false)
	if !errors.Is(err, ErrVaultUnreachable) || !strings.Contains(err.Error(), "new sessions are refused") {
		t.Errorf("ProductionCookie = %v", err)
	}
	if _, err := s.ProductionCookie(context.Background(), "../x", false); err == nil {
		t.Error("cluster name with a slash accepted")
	}
}

func TestGenerateCookie(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c, err := GenerateCookie(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != GeneratedCookieLen || strings.Trim(c, cookieAlphabet) != "" {
			t.Fatalf("cookie %q has wrong length or characters", c)
		}
		if seen[c] {
			t.Fatal("cookie repeated")
		}
		seen[c] = true
	}
	// Bytes past the unbiased limit are skipped, not folded in.
	r := bytes.NewReader(append(bytes.Repeat([]byte{255}, 64), bytes.Repeat([]byte{1}, 64)...))
	c, err := GenerateCookie(r)
	if err != nil || c != strings.Repeat("B", GeneratedCookieLen) {
		t.Errorf("GenerateCookie(biased source) = %q, %v", c, err)
	}
	if _, err := GenerateCookie(bytes.NewReader(nil)); err == nil {
		t.Error("empty random source accepted")
	}
}

func TestSnapshotRevoked(t *testing.T) {
	s := newSnapshot(3, []Revocation{
		{ID: "1", User: "alice"},
		{ID: "2", Fingerprint: "SHA256:abc"},
		{ID: "3", KeyID: "bob@laptop", Serial: 77},
	})
	for _, tt := range []struct {
		user, fp, keyID string
		serial          uint64
		want            bool
	}{
		{"alice", "", "", 0, true},
		{"carol", "SHA256:abc", "", 0, true},
		{"carol", "SHA256:def", "bob@laptop", 0, true},
		{"carol", "", "", 77, true},
		{"carol", "SHA256:def", "carol@x", 78, false},
		{"", "", "", 0, false},
	} {
		if got := s.Revoked(tt.user, tt.fp, tt.keyID, tt.serial); got != tt.want {
			t.Errorf("Revoked(%q,%q,%q,%d) = %v", tt.user, tt.fp, tt.keyID, tt.serial, got)
		}
	}
	if (Snapshot{}).Revoked("alice", "", "", 0) {
		t.Error("zero snapshot revokes")
	}
	next := newSnapshot(4, append(s.Entries, Revocation{ID: "4", User: "dave"}, Revocation{ID: "5", User: "alice"}))
	next.Added = addedSince(&s, next)
	if got := next.RevokedUsers(); strings.Join(got, ",") != "alice,dave" {
		t.Errorf("RevokedUsers = %v", got)
	}
	for _, bad := range []Revocation{{}, {Fingerprint: "MD5:aa"}, {User: strings.Repeat("x", 2000)}} {
		if bad.validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
