package vaulttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"

	"github.com/hashicorp/vault/api"
)

// setupSSHCA mounts Vault's SSH secrets engine at "ssh" with a generated
// CA, the shipped SSH role "observer" (deploy/vault/ssh-role-observer.json
// with the userpass mount's accessor put in) and policy
// beamgate-engineer-observer, attached to group beamgate-observers. It
// creates userpass user name, in that group, and returns a Vault client
// logged in as them.
func setupSSHCA(t *testing.T, tv *testVault, name string) *api.Client {
	t.Helper()
	root := tv.root
	if err := root.Sys().Mount("ssh", &api.MountInput{Type: "ssh"}); err != nil {
		t.Fatalf("mount ssh: %v", err)
	}
	if _, err := root.Logical().Write("ssh/config/ca", map[string]any{"generate_signing_key": true, "key_type": "ssh-ed25519"}); err != nil {
		t.Fatalf("ssh CA: %v", err)
	}
	if err := root.Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatalf("enable userpass: %v", err)
	}
	auths, err := root.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	accessor := auths["userpass/"].Accessor
	role, err := os.ReadFile(filepath.Join("..", "..", "deploy", "vault", "ssh-role-observer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteBytes("ssh/roles/observer", []byte(strings.ReplaceAll(string(role), "AUTH_ACCESSOR", accessor))); err != nil {
		t.Fatalf("ssh role observer from deploy/vault/ssh-role-observer.json: %v", err)
	}
	hcl, err := os.ReadFile(filepath.Join("..", "..", "deploy", "vault", "beamgate-engineer-observer.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("beamgate-engineer-observer", string(hcl)); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/"+name, map[string]any{"password": "pw-" + name}); err != nil {
		t.Fatal(err)
	}
	c, err := root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	sec, err := c.Logical().Write("auth/userpass/login/"+name, map[string]any{"password": "pw-" + name})
	if err != nil {
		t.Fatalf("userpass login: %v", err)
	}
	c.SetToken(sec.Auth.ClientToken)
	if _, err := root.Logical().Write("identity/group", map[string]any{"name": "beamgate-observers",
		"policies": []string{"beamgate-engineer-observer"}, "member_entity_ids": []string{sec.Auth.EntityID}}); err != nil {
		t.Fatalf("group: %v", err)
	}
	return c
}

// signWithVault is the engineer's `vault write -field=signed_key
// ssh/sign/observer public_key=@KEY.pub > KEY-cert.pub`, through the API.
func signWithVault(t *testing.T, c *api.Client, key string, extra map[string]any) error {
	t.Helper()
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"public_key": string(pub)}
	for k, v := range extra {
		data[k] = v
	}
	sec, err := c.Logical().Write("ssh/sign/observer", data)
	if err != nil {
		return err
	}
	return os.WriteFile(key+"-cert.pub", []byte(fmt.Sprint(sec.Data["signed_key"])), 0o600)
}

// TestVaultSSHCA: Vault's SSH engine signs dana's key with the shipped
// role, so the certificate names her and beamgate-role:observer. dana has
// no users: entry: she logs in with the real OpenSSH client, the gateway
// trusting the CA key it read from Vault, and observes production through
// ssh -N and a real erl node. A certificate asking for more than the role
// allows is never issued; one over the gateway's max_cert_validity is
// refused; `beamgate offboard dana` revokes her name, key id and serial
// and cuts her live tunnel, and her next login is refused.
func TestVaultSSHCA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds beamgate, starts Vault, BEAM nodes and OpenSSH")
	}
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t, "go")
	bin := beamtest.BuildBeamgate(t, t.TempDir())
	tv := startVault(t)
	auth := tv.appRole(t, "gateway", "beamgate-gateway", time.Hour, 2*time.Hour)
	const prodCookie = "PRODCOOKIEFROMVAULTNEVERSHOWN"
	tv.putCookie(t, "prismatic", prodCookie)
	dana := setupSSHCA(t, tv, "dana")

	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	prod := beamtest.StartProduction(t, beamtest.Options{Name: "prismatic@prod-01", Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd})
	dir := t.TempDir()
	key := beamtest.NewSSHKey(t, dir, "dana")
	if err := signWithVault(t, dana, key, nil); err != nil {
		t.Fatalf("vault write ssh/sign/observer: %v", err)
	}
	_, certText := runCmd(t, "ssh-keygen", "-L", "-f", key+"-cert.pub")
	t.Logf("the certificate Vault signed:\n%s", certText)
	for _, want := range []string{"dana", "beamgate-role:observer", "permit-port-forwarding"} {
		if !strings.Contains(certText, want) {
			t.Fatalf("the certificate lacks %q", want)
		}
	}
	// The role allows dana and beamgate-role:observer only.
	if err := signWithVault(t, dana, beamtest.NewSSHKey(t, t.TempDir(), "greedy"), map[string]any{"valid_principals": "dana,beamgate-role:admin"}); err == nil {
		t.Error("Vault signed a certificate granting beamgate-role:admin with the observer role")
	}

	sshPort := beamtest.FreePort(t)
	ep := beamtest.FreePortOn(t, "127.0.0.1", "127.77.1.1")
	gp := beamtest.FreePortOn(t, "127.77.1.1")
	cfg := filepath.Join(dir, "beamgate.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
host_key: ./state/host_key
audit:
  path: ./state/audit.jsonl
engineer_epmd_port: %d
%sclusters:
  prismatic:
    nodes:
      - {name: prismatic@prod-01, dial: "127.0.0.2:%d", gateway_port: %d}
user_cas:
  - name: vault
    vault_mount: ssh
    allowed_roles: [observer]
    max_cert_validity: 10h
roles:
  observer:
    clusters: [prismatic]
    policy: readonly
    mode: enforce
`, sshPort, ep, tv.cookiesYAML(auth), prodEpmd, gp)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := startProc(t, bin, "serve", "--config", cfg)
	serve.waitPort(t, "127.0.0.1", sshPort)
	ssh := func(k string, args ...string) (int, string) {
		return runCmd(t, "ssh", append(append(beamtest.SSHClientArgs(sshPort, k), "dana@127.0.0.1"), args...)...)
	}
	code, banner := ssh(key)
	if code != 0 || !strings.Contains(banner, "role: observer (from your certificate)") || !strings.Contains(banner, "certificate from CA vault") {
		t.Fatalf("dana's banner: exit %d\n%s\n%s", code, banner, serve.out.String())
	}
	_, cookie := ssh(key, "cookie")
	_, recipe := ssh(key, "recipe", "prismatic")
	fwd := startProc(t, "ssh", append(beamtest.SSHClientArgs(sshPort, key), strings.Fields(beamtest.RecipeLine(t, recipe, "ssh -N"))[1:]...)...)
	fwd.waitPort(t, "127.77.1.1", gp)
	eng := beamtest.Start(t, beamtest.Options{Name: "dana_erl@localhost", Cookie: strings.TrimSpace(cookie), EpmdPort: ep,
		Env: beamtest.RecipeEnv(t, recipe, t.TempDir()), ExtraArgs: []string{"-connect_all", "false"}})
	if got := eng.Eval(t, "rpc:call('prismatic@prod-01', erlang, node, [], 10000)"); got != "'prismatic@prod-01'" {
		t.Fatalf("dana's rpc through beamgate: %s\n%s", got, serve.out.String())
	}
	if got := eng.Eval(t, "rpc:call('prismatic@prod-01', ets, delete, [orders], 10000)"); !strings.Contains(got, "beamgate_denied") {
		t.Errorf("a write as observer: %s", got)
	}
	auditText := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "state", "audit.jsonl"))
		return string(b)
	}
	if log := auditText(); !strings.Contains(log, `"user":"dana"`) || !strings.Contains(log, `"ca":"vault"`) || !strings.Contains(log, `"cert_roles":"observer"`) {
		t.Errorf("the audit log does not carry dana's certificate:\n%s", log)
	}

	// Vault's role allows up to 12h; this gateway accepts 10h at most.
	long := beamtest.NewSSHKey(t, t.TempDir(), "long")
	if err := signWithVault(t, dana, long, map[string]any{"ttl": "11h"}); err != nil {
		t.Fatal(err)
	}
	if code, out := ssh(long, "cookie"); code != 255 {
		t.Errorf("an 11h certificate under a 10h maximum: exit %d %s", code, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(auditText(), "over CA vault's max_cert_validity of 10h") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal naming the maximum:\n%s", auditText())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Offboarding: name, key id and serial revoked; the live tunnel cut.
	code, out := runCmd(t, bin, "offboard", "dana", "--reason", "left", "--config", cfg, "--no-rotate")
	t.Logf("offboard:\n%s", out)
	if code != 0 || !strings.Contains(out, "revoked certificate key id") || !strings.Contains(out, "revoked certificate serial") {
		t.Fatalf("offboard: exit %d\n%s", code, out)
	}
	select {
	case <-fwd.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("dana's tunnel survived her offboarding")
	}
	if code, _ := ssh(key, "cookie"); code != 255 {
		t.Errorf("offboarded dana logged in: exit %d", code)
	}
	if rows := prod.OrdersRows(t); len(rows) != len(beamtest.InitialOrders) {
		t.Errorf("production changed: %v", rows)
	}
	if strings.Contains(auditText()+serve.out.String(), prodCookie) {
		t.Error("the production cookie reached a log")
	}
}
