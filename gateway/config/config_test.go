package config

import (
	"beamgate/internal/beamtest"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const testKey = beamtest.ExampleKey

var exampleConfig = beamtest.ExampleConfig

func TestConfigExample(t *testing.T) {
	cfg, err := Parse([]byte(exampleConfig), "/etc/beamgate")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HostKey != "/etc/beamgate/state/ssh_host_ed25519_key" || cfg.Cookies.File != "/etc/beamgate/state/cookies.yaml" ||
		cfg.Audit.Path != "/etc/beamgate/state/audit.jsonl" || cfg.GatewaySecretFile != "/etc/beamgate/state/gateway_secret" {
		t.Errorf("paths not resolved against the config dir: %+v", cfg)
	}
	l := cfg.Limits
	if l.HandshakeTimeout != time.Minute || l.MaxUnauthenticated != 64 || l.IdleTimeout != 30*time.Minute || l.KeepaliveInterval != 30*time.Second ||
		l.MaxChannelsPerConnection != 64 || l.MaxConnectionsPerUser != 8 || l.MaxSessionsPerTarget != 64 || cfg.CookieWindow != 24*time.Hour {
		t.Errorf("defaults: %+v window %v", l, cfg.CookieWindow)
	}
	nodes := cfg.ReachableFor(cfg.Users["alice"].Roles)
	if len(nodes) != 1 || nodes[0].Alive != "prismatic" || nodes[0].Host != "prod-01" || nodes[0].EpmdAddr() != "10.0.0.5:4369" {
		t.Fatalf("Reachable = %+v", nodes)
	}
	if g := cfg.Grants("alice")["prismatic"]; g.Role != "observer" || g.Mode != "enforce" || g.Profile == nil {
		t.Errorf("grant = %+v", g)
	}
	if cfg.ReachableFor(nil) != nil {
		t.Errorf("unknown user reaches nodes")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		edit      func(string) string
		key, want string // the key path, and a phrase of the fix
	}{
		{"typo", func(s string) string { return strings.Replace(s, "listen:", "lisen:", 1) }, "lisen: unknown key (line 2)", "did you mean listen?"},
		{"missing gateway_port", func(s string) string { return strings.Replace(s, "        gateway_port: 4370\n", "", 1) },
			"clusters.prismatic.nodes[0].gateway_port: missing", "set the distribution port engineers forward, e.g. 4370"},
		{"gateway_port 4369", func(s string) string { return strings.Replace(s, "gateway_port: 4370", "gateway_port: 4369", 1) },
			"clusters.prismatic.nodes[0].gateway_port", "pick another port"},
		{"bad node name", func(s string) string { return strings.Replace(s, "prismatic@prod-01", "prismatic", 1) },
			"clusters.prismatic.nodes[0].name", "alive@host"},
		{"missing dial", func(s string) string { return strings.Replace(s, "        dial: 10.0.0.5\n", "", 1) },
			"clusters.prismatic.nodes[0].dial: missing", "epmd"},
		{"duplicate port on host", func(s string) string {
			return strings.Replace(s, "        gateway_port: 4370\n", "        gateway_port: 4370\n      - name: other@prod-01\n        dial: 10.0.0.5\n        gateway_port: 4370\n", 1)
		}, "clusters.prismatic.nodes[1].gateway_port", "own gateway_port"},
		{"unknown role", func(s string) string { return strings.Replace(s, "roles: [observer]", "roles: [observr]", 1) },
			"users.alice.roles[0]: unknown role \"observr\"", "observer"},
		{"unknown cluster", func(s string) string { return strings.Replace(s, "clusters: [prismatic]", "clusters: [prismatik]", 1) },
			"roles.observer.clusters[0]: unknown cluster", "use one of: prismatic"},
		{"bad mode", func(s string) string { return strings.Replace(s, "mode: enforce", "mode: strict", 1) },
			"roles.observer.mode", "use enforce or audit"},
		{"bad key", func(s string) string { return strings.Replace(s, testKey, "ssh-ed25519 garbage", 1) },
			"users.alice.keys[0]", "paste a line"},
		{"bad ca", func(s string) string { return strings.Replace(s, "user_ca_keys: []", "user_ca_keys: [nonsense]", 1) },
			"user_ca_keys[0]", "CA's .pub line"},
		{"user_cas without a key", func(s string) string {
			return strings.Replace(s, "user_ca_keys: []", "user_cas:\n  - name: team\n    allowed_roles: [observer]", 1)
		}, "user_cas.team: neither key nor vault_mount is set", "vault_mount: ssh"},
		{"user_cas with both", func(s string) string {
			return strings.Replace(s, "user_ca_keys: []", "user_cas:\n  - name: team\n    key: \""+testKey+"\"\n    vault_mount: ssh", 1)
		}, "user_cas.team: both key and vault_mount are set", "keep one"},
		{"user_cas vault without vault", func(s string) string {
			return strings.Replace(s, "user_ca_keys: []", "user_cas:\n  - name: team\n    vault_mount: ssh", 1)
		}, "user_cas.team.vault_mount: needs cookies.backend: vault", "cookies.vault block"},
		{"user_cas unknown role", func(s string) string {
			return strings.Replace(s, "user_ca_keys: []", "user_cas:\n  - name: team\n    key: \""+testKey+"\"\n    allowed_roles: [admin]", 1)
		}, "user_cas.team.allowed_roles[0]: unknown role \"admin\"", "use one of: observer"},
		{"user_cas tiny validity", func(s string) string {
			return strings.Replace(s, "user_ca_keys: []", "user_cas:\n  - name: team\n    key: \""+testKey+"\"\n    max_cert_validity: 10s", 1)
		}, "user_cas.team.max_cert_validity: 10s is below 1m", "12h"},
		{"user_cas unnamed", func(s string) string {
			return strings.Replace(s, "user_ca_keys: []", "user_cas:\n  - key: \""+testKey+"\"", 1)
		}, "user_cas[0].name: missing", "name the CA"},
		{"vault without a block", func(s string) string { return strings.Replace(s, "backend: file", "backend: vault", 1) },
			"cookies.vault.address: missing", "https://vault.example.com:8200"},
		{"unknown backend", func(s string) string { return strings.Replace(s, "backend: file", "backend: consul", 1) },
			"cookies.backend", "backend: vault"},
		{"vault approle half", func(s string) string {
			return strings.Replace(s, "backend: file", "backend: vault\n  vault:\n    address: https://v:8200\n    auth:\n      role_id_file: ./r", 1)
		}, "cookies.vault.auth.secret_id_file: missing", "AppRole secret id"},
		{"vault plain http", func(s string) string {
			return strings.Replace(s, "backend: file", "backend: vault\n  vault:\n    address: http://v:8200\n    auth: {token_file: ./t}", 1)
		}, "cookies.vault.address", "insecure_skip_verify"},
		{"vault auth method", func(s string) string {
			return strings.Replace(s, "backend: file", "backend: vault\n  vault:\n    address: https://v:8200\n    auth: {method: ldap}", 1)
		}, "cookies.vault.auth.method", "approle or token"},
		{"vault ca file", func(s string) string {
			return strings.Replace(s, "backend: file", "backend: vault\n  vault:\n    address: https://v:8200\n    ca_file: ./nope.pem\n    auth: {token_file: ./t}", 1)
		}, "cookies.vault.ca_file", "PEM bundle"},
		{"vault stale below ttl", func(s string) string {
			return strings.Replace(s, "backend: file", "backend: vault\n  vault:\n    address: https://v:8200\n    cache_ttl: 10m\n    stale_limit: 1m\n    auth: {token_file: ./t}", 1)
		}, "cookies.vault.stale_limit", "at least cache_ttl"},
		{"no cookie file", func(s string) string { return strings.Replace(s, "  file: ./state/cookies.yaml\n", "", 1) },
			"cookies.file: missing", "mode 0600"},
		{"no listen", func(s string) string { return strings.Replace(s, "listen: 127.0.0.1:2222\n", "", 1) },
			"listen: missing", "127.0.0.1:2222"},
		{"no host key", func(s string) string { return strings.Replace(s, "host_key: ./state/ssh_host_ed25519_key\n", "", 1) },
			"host_key: missing", "created on first start"},
		{"no audit", func(s string) string { return strings.Replace(s, "  path: ./state/audit.jsonl\n", "", 1) },
			"audit.path: missing", "audit log"},
		{"bad limit", func(s string) string { return s + "limits:\n  max_channels_per_connection: -1\n" },
			"limits.max_channels_per_connection", "between 1 and 65536"},
		{"bad duration", func(s string) string { return s + "limits:\n  idle_timeout: 1ms\n" },
			"limits.idle_timeout", "positive duration"},
		{"unknown limit", func(s string) string { return s + "limits:\n  max_chanels: 3\n" },
			"limits.max_chanels: unknown key", "did you mean max_channels_per_connection?"},
		{"unknown node key", func(s string) string { return strings.Replace(s, "gateway_port: 4370", "gateway_prot: 4370", 1) },
			"clusters.prismatic.nodes[0].gateway_prot: unknown key", "did you mean gateway_port?"},
		{"type error", func(s string) string { return s + "limits:\n  idle_timeout: soon\n" },
			"limits.idle_timeout: cannot unmarshal a string `soon`", "configs/beamgate.example.yaml"},
		{"gateway port is an engineer epmd port", func(s string) string { return strings.Replace(s, "gateway_port: 4370", "gateway_port: 14369", 1) },
			"gateway_port", "local epmd ports"},
		{"reserved host", func(s string) string { return strings.Replace(s, "prismatic@prod-01", "prismatic@beamgate", 1) },
			"nodes[0].name", "reserved"},
		{"mixed name styles", func(s string) string {
			return strings.Replace(s, "        gateway_port: 4370\n", "        gateway_port: 4370\n      - {name: p2@prod-02.example.com, dial: 10.0.0.6, gateway_port: 4370}\n", 1)
		}, "nodes[1].name", "mixes short and long names"},
		{"bad loopback", func(s string) string { return s + "engineer_loopback: 10.0.0.0/16\n" },
			"engineer_loopback", "inside 127.0.0.0/8"},
		{"loopback holding 127.0.0.1", func(s string) string { return s + "engineer_loopback: 127.0.0.0/16\n" },
			"engineer_loopback", "127.0.1.1"},
		{"too few channels", func(s string) string { return s + "limits:\n  max_channels_per_connection: 4\n" },
			"limits.max_channels_per_connection", "at least 5"},
		{"no roles", func(s string) string { return strings.Replace(s, "    roles: [observer]\n", "", 1) },
			"users.alice.roles: missing", "at least one role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.edit(exampleConfig)), "/etc/beamgate")
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.key) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name %q and %q", msg, tc.key, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("not a *Error: %T", err)
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "beamgate.yaml")
	os.WriteFile(path, []byte(exampleConfig), 0o600)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HostKey != filepath.Join(dir, "state/ssh_host_ed25519_key") {
		t.Errorf("host key %q", cfg.HostKey)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestExampleConfigFileParses(t *testing.T) {
	data, err := os.ReadFile("../../configs/beamgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data, t.TempDir()); err != nil {
		t.Fatalf("configs/beamgate.example.yaml: %v", err)
	}
}

// TestKubernetesConfigParses: the beamgate.yaml the Kubernetes ConfigMap
// mounts is one beamgate accepts (the manifest test, in its own module,
// checks the manifests around it).
func TestKubernetesConfigParses(t *testing.T) {
	data, err := os.ReadFile("../../deploy/kubernetes/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatal(err)
	}
	text, ok := cm.Data["beamgate.yaml"]
	if !ok {
		t.Fatal("configmap.yaml has no beamgate.yaml")
	}
	// The Deployment mounts the ConfigMap's policy-oncall.yaml at
	// /etc/beamgate/policy/oncall.yaml: put it there under a temp dir.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "policy"), 0o700)
	for k, v := range cm.Data {
		if name, ok := strings.CutPrefix(k, "policy-"); ok {
			os.WriteFile(filepath.Join(dir, "policy", name), []byte(v), 0o600)
		}
	}
	text = strings.ReplaceAll(text, "/etc/beamgate/", dir+"/")
	if _, err := Parse([]byte(text), dir); err != nil {
		t.Fatalf("deploy/kubernetes/configmap.yaml's beamgate.yaml: %v", err)
	}
}

// vaultYAML is a vault cookies block with AppRole files relative to the
// configuration file.
const vaultYAML = `backend: vault
  vault:
    address: https://vault.example.com:8200
    ca_file: ./vault-ca.pem
    auth:
      role_id_file: ./role_id
      secret_id_file: ./secret_id
    cache_ttl: 30s
    stale_limit: 10m`

func TestVaultConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vault-ca.pem"), []byte("x"), 0o600)
	cfg, err := Parse([]byte(strings.Replace(exampleConfig, "backend: file", vaultYAML, 1)), dir)
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.Cookies.Vault
	if cfg.Cookies.Backend != "vault" || v.Address != "https://vault.example.com:8200" ||
		v.CAFile != filepath.Join(dir, "vault-ca.pem") || v.Auth.RoleIDFile != filepath.Join(dir, "role_id") ||
		v.Auth.SecretIDFile != filepath.Join(dir, "secret_id") || v.CacheTTL != 30*time.Second || v.StaleLimit != 10*time.Minute {
		t.Errorf("vault block: %+v", v)
	}

	// VAULT_SKIP_VERIFY in the environment is refused unless the
	// configuration says insecure.
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	_, err = Parse([]byte(strings.Replace(exampleConfig, "backend: file", vaultYAML, 1)), dir)
	if err == nil || !strings.Contains(err.Error(), "cookies.vault:") || !strings.Contains(err.Error(), "VAULT_SKIP_VERIFY") {
		t.Errorf("VAULT_SKIP_VERIFY accepted: %v", err)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Errorf("not a *Error: %T", err)
	}
}

func TestAuditShipConfig(t *testing.T) {
	withShip := func(block string) string {
		return strings.Replace(exampleConfig, "  path: ./state/audit.jsonl\n", "  path: ./state/audit.jsonl\n  ship:\n"+block, 1)
	}
	cfg, err := Parse([]byte(exampleConfig), "/etc/beamgate")
	if err != nil || cfg.Audit.Ship != nil {
		t.Fatalf("no ship block: %+v, %v", cfg.Audit.Ship, err)
	}

	// Defaults: unix /dev/log, authpriv, the state file beside the log.
	cfg, err = Parse([]byte(withShip("    to: syslog\n")), "/etc/beamgate")
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Audit.Ship; s.Network != "unix" || s.Address != "/dev/log" || s.Facility != "authpriv" || s.FacilityCode() != 10 ||
		s.StateFile != "/etc/beamgate/state/audit-ship.state" || s.MaxMessageSize != 0 {
		t.Errorf("syslog defaults: %+v", s)
	}
	cfg, err = Parse([]byte(withShip("    to: syslog\n    address: logs.example.com:514\n    facility: local3\n    state_file: ./ship.json\n    max_message_size: 8192\n")), "/etc/beamgate")
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Audit.Ship; s.Network != "tcp" || s.Address != "logs.example.com:514" || s.FacilityCode() != 19 ||
		s.StateFile != "/etc/beamgate/ship.json" || s.MaxMessageSize != 8192 {
		t.Errorf("syslog tcp: %+v", s)
	}
	cfg, err = Parse([]byte(withShip("    to: syslog\n    network: unix\n    address: ./run/syslog.sock\n")), "/etc/beamgate")
	if err != nil || cfg.Audit.Ship.Address != "/etc/beamgate/run/syslog.sock" {
		t.Errorf("relative socket: %+v, %v", cfg.Audit.Ship, err)
	}
	cfg, err = Parse([]byte(withShip("    to: stdout\n")), "/etc/beamgate")
	if err != nil || cfg.Audit.Ship.To != ShipStdout || cfg.Audit.Ship.Network != "" {
		t.Errorf("stdout: %+v, %v", cfg.Audit.Ship, err)
	}

	for _, tc := range []struct{ block, key, fix string }{
		{"    network: tcp\n", "audit.ship.to: missing", "to: stdout"},
		{"    to: kafka\n", "audit.ship.to", "use to: syslog or to: stdout"},
		{"    to: stdout\n    address: 127.0.0.1:514\n", "audit.ship.address: only used with to: syslog", "remove it"},
		{"    to: syslog\n    network: tcp\n", "audit.ship.address: missing", "127.0.0.1:514"},
		{"    to: syslog\n    network: udp\n    address: nohost\n", "audit.ship.address", "host:port"},
		{"    to: syslog\n    address: 127.0.0.1:99999\n", "audit.ship.address", "port such as 514"},
		{"    to: syslog\n    network: relp\n    address: x:1\n", "audit.ship.network", "unix"},
		{"    to: syslog\n    facility: secret\n", "audit.ship.facility", "local0..local7"},
		{"    to: syslog\n    max_message_size: 100\n", "audit.ship.max_message_size", "480"},
		{"    to: syslog\n    state_file: ./state/audit.jsonl\n", "audit.ship.state_file", "another file"},
		{"    to: syslog\n    adress: x\n", "audit.ship.adress: unknown key", "did you mean address?"},
	} {
		_, err := Parse([]byte(withShip(tc.block)), "/etc/beamgate")
		if err == nil {
			t.Errorf("%q accepted", tc.block)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.key) || !strings.Contains(msg, tc.fix) {
			t.Errorf("%q: error %q does not name %q and %q", tc.block, msg, tc.key, tc.fix)
		}
	}
}

// TestUserCAs: a user_cas entry gets its defaults, and a configuration
// whose only engineers come with certificates needs no users: at all.
func TestUserCAs(t *testing.T) {
	text := strings.Replace(exampleConfig, "user_ca_keys: []", "user_cas:\n  - name: team\n    key: \""+testKey+"\"\n    allowed_roles: [observer]", 1)
	text = text[:strings.Index(text, "users:")] + text[strings.Index(text, "user_cas:"):]
	cfg, err := Parse([]byte(text), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cas := cfg.UserCAs()
	if len(cas) != 1 || cas[0].RolePrefix != DefaultRolePrefix || cas[0].MaxCertValidity != DefaultMaxCertValidity || cas[0].PublicKey() == nil {
		t.Fatalf("user_cas: %+v", cas)
	}
	roles, err := cfg.RolesFor(cas[0], []string{"carol", "beamgate-role:observer", "beamgate-role:observer"})
	if err != nil || len(roles) != 1 || roles[0] != "observer" {
		t.Errorf("RolesFor = %v, %v", roles, err)
	}
	for _, bad := range []string{"beamgate-role:nosuch", "beamgate-role:"} {
		if _, err := cfg.RolesFor(cas[0], []string{"carol", bad}); err == nil {
			t.Errorf("RolesFor accepted %q", bad)
		}
	}
	if g := cfg.GrantsFor([]string{"observer"}); g["prismatic"].Role != "observer" {
		t.Errorf("GrantsFor = %v", g)
	}
	// Without a CA that grants roles, users: stays required.
	noGrant := strings.Replace(text, "    allowed_roles: [observer]\n", "", 1)
	if _, err := Parse([]byte(noGrant), t.TempDir()); err == nil || !strings.Contains(err.Error(), "users: no users configured") {
		t.Errorf("no users and no granting CA: %v", err)
	}
}
