package vaulttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"beamgate/cookies"
	"beamgate/internal/beamtest"

	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/builtin/credential/userpass"
	sshengine "github.com/hashicorp/vault/builtin/logical/ssh"
	"github.com/hashicorp/vault/builtin/logical/transit"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// testVault is a real Vault core running in-process, with KV v2 at
// "secret", AppRole at "approle" and beamgate's shipped policies.
type testVault struct {
	cluster *vault.TestCluster
	root    *api.Client
	addr    string
	caFile  string
}

func startVault(t *testing.T) *testVault {
	t.Helper()
	cluster := vault.NewTestCluster(t, &vault.CoreConfig{
		LogicalBackends:    map[string]logical.Factory{"kv": kv.Factory, "transit": transit.Factory, "ssh": sshengine.Factory},
		CredentialBackends: map[string]logical.Factory{"approle": approle.Factory, "userpass": userpass.Factory},
	}, &vault.TestClusterOptions{HandlerFunc: vaulthttp.Handler, NumCores: 1})
	cluster.Start()
	t.Cleanup(cluster.Cleanup)
	root := cluster.Cores[0].Client
	tv := &testVault{cluster: cluster, root: root, addr: root.Address(), caFile: cluster.CACertPEMFile}

	_ = root.Sys().Unmount("secret")
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv v2: %v", err)
	}
	// A fresh KV v2 mount upgrades itself before it accepts writes.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := root.KVv2("secret").Put(context.Background(), "beamgate/ready", map[string]any{"ok": "1"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kv v2 mount never became writable: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Audit checkpoints: a Transit key of type ed25519 that cannot be
	// exported or deleted, as deploy/vault/README.md sets it up.
	if err := root.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("mount transit: %v", err)
	}
	if _, err := root.Logical().Write("transit/keys/beamgate-audit", map[string]any{"type": "ed25519", "exportable": false}); err != nil {
		t.Fatalf("transit key: %v", err)
	}
	for _, name := range []string{"beamgate-gateway", "beamgate-reader", "beamgate-auditor"} {
		hcl, err := os.ReadFile(filepath.Join("..", "..", "deploy", "vault", name+".hcl"))
		if err != nil {
			t.Fatal(err)
		}
		if err := root.Sys().PutPolicy(name, string(hcl)); err != nil {
			t.Fatalf("policy %s: %v", name, err)
		}
	}
	if err := root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	return tv
}

// appRole creates an AppRole with policy and token TTLs, writes its role id
// and a secret id to files, and returns the auth config.
func (tv *testVault) appRole(t *testing.T, role, policy string, ttl, maxTTL time.Duration) cookies.VaultAuth {
	t.Helper()
	if _, err := tv.root.Logical().Write("auth/approle/role/"+role, map[string]any{
		"token_policies": policy,
		"token_ttl":      int(ttl / time.Second),
		"token_max_ttl":  int(maxTTL / time.Second),
	}); err != nil {
		t.Fatalf("approle role: %v", err)
	}
	rid, err := tv.root.Logical().Read("auth/approle/role/" + role + "/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := tv.root.Logical().Write("auth/approle/role/"+role+"/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return cookies.VaultAuth{
		Method:       cookies.AuthAppRole,
		RoleIDFile:   write("role_id", rid.Data["role_id"].(string)),
		SecretIDFile: write("secret_id", sid.Data["secret_id"].(string)),
	}
}

// auditorToken creates a reviewer's token (policy beamgate-auditor) and
// writes it to a file.
func (tv *testVault) auditorToken(t *testing.T) string {
	t.Helper()
	sec, err := tv.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"beamgate-auditor"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "reviewer-token")
	if err := os.WriteFile(p, []byte(sec.Auth.ClientToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// putCookie writes a cluster cookie as root and returns its version.
func (tv *testVault) putCookie(t *testing.T, cluster, cookie string) int {
	t.Helper()
	sec, err := tv.root.KVv2("secret").Put(context.Background(), cookies.DefaultPathPrefix+"/"+cluster,
		map[string]any{cookies.CookieField: cookie})
	if err != nil {
		t.Fatalf("put cookie: %v", err)
	}
	return sec.VersionMetadata.Version
}

// newLogger returns a zap logger writing JSON at debug level into a
// buffer, to check that no cookie ever reaches a log.
func newLogger() (*zap.Logger, *beamtest.SyncBuffer) {
	b := &beamtest.SyncBuffer{}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), b, zapcore.DebugLevel)
	return zap.New(core), b
}

// noSecrets fails if any text contains any secret.
func noSecrets(t *testing.T, texts []string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, txt := range texts {
			if s != "" && strings.Contains(txt, s) {
				t.Errorf("a cookie appears in %q", txt)
			}
		}
	}
}

func openStore(t *testing.T, cfg cookies.VaultConfig) *cookies.VaultStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := cookies.NewVaultStore(ctx, cfg)
	if err != nil {
		t.Fatalf("NewVaultStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAppRoleReadCacheFreshPrevious(t *testing.T) {
	tv := startVault(t)
	log, logs := newLogger()
	const c1, c2 = "FIRSTCOOKIE1111", "SECONDCOOKIE222"
	tv.putCookie(t, "prismatic", c1)
	s := openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
		Auth: tv.appRole(t, "gw", "beamgate-reader", time.Hour, 2*time.Hour), Logger: log})
	ctx := ctxT(t)

	got, err := s.ProductionCookie(ctx, "prismatic", false)
	if err != nil || got != c1 {
		t.Fatalf("ProductionCookie = %q, %v", got, err)
	}
	// Rotated in Vault behind the gateway's back: the cache serves the old
	// cookie until its TTL, a fresh read (after a refused handshake) gets
	// the new one, and the previous version stays reachable.
	tv.putCookie(t, "prismatic", c2)
	if got, _ := s.ProductionCookie(ctx, "prismatic", false); got != c1 {
		t.Errorf("cached read = %q, want the cached first cookie", got)
	}
	if got, err := s.ProductionCookie(ctx, "prismatic", true); err != nil || got != c2 {
		t.Errorf("fresh read = %q, %v", got, err)
	}
	if got, _ := s.ProductionCookie(ctx, "prismatic", false); got != c2 {
		t.Errorf("read after fresh = %q", got)
	}
	cur, prev, err := s.ProductionCookies(ctx, "prismatic")
	if err != nil || cur != c2 || prev != c1 {
		t.Errorf("ProductionCookies = %q, %q, %v", cur, prev, err)
	}
	_, err = s.ProductionCookie(ctx, "unknown", false)
	if err == nil || !strings.Contains(err.Error(), "no production cookie") {
		t.Errorf("unknown cluster: %v", err)
	}
	// The reader policy cannot write a cookie.
	_, werr := s.Client().KVv2("secret").Put(ctx, cookies.DefaultPathPrefix+"/prismatic", map[string]any{"cookie": "X"})
	if werr == nil {
		t.Error("reader policy could write a cookie")
	}
	noSecrets(t, []string{logs.String(), err.Error()}, c1, c2)
	if s.Logins() != 1 {
		t.Errorf("logins = %d", s.Logins())
	}
}

func TestTokenAuthFromFile(t *testing.T) {
	tv := startVault(t)
	tv.putCookie(t, "prismatic", "TOKENCOOKIE")
	tok, err := tv.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"beamgate-reader"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "token")
	os.WriteFile(p, []byte(tok.Auth.ClientToken+"\n"), 0o600)
	t.Setenv("VAULT_TOKEN", "hvs.not-this-one")
	s := openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
		Auth: cookies.VaultAuth{Method: cookies.AuthToken, TokenFile: p}})
	if got, err := s.ProductionCookie(ctxT(t), "prismatic", false); err != nil || got != "TOKENCOOKIE" {
		t.Errorf("ProductionCookie = %q, %v", got, err)
	}
	// Without a CA file the test cluster's certificate is not trusted.
	_, err = cookies.NewVaultStore(ctxT(t), cookies.VaultConfig{Address: tv.addr,
		Auth: cookies.VaultAuth{Method: cookies.AuthToken, TokenFile: p}})
	if err == nil {
		t.Error("store without the CA file trusted the test cluster")
	}
	t.Setenv("VAULT_SKIP_VERIFY", "1")
	_, err = cookies.NewVaultStore(ctxT(t), cookies.VaultConfig{Address: tv.addr,
		Auth: cookies.VaultAuth{Method: cookies.AuthToken, TokenFile: p}})
	if err == nil || !strings.Contains(err.Error(), "VAULT_SKIP_VERIFY") {
		t.Errorf("VAULT_SKIP_VERIFY accepted: %v", err)
	}
}

func TestTokenRenewalAndRelogin(t *testing.T) {
	tv := startVault(t)
	tv.putCookie(t, "prismatic", "RENEWCOOKIE")
	log, logs := newLogger()
	s := openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile, CacheTTL: 100 * time.Millisecond,
		Auth: tv.appRole(t, "short", "beamgate-reader", 3*time.Second, 6*time.Second), Logger: log})
	deadline := time.Now().Add(30 * time.Second)
	for s.Logins() < 2 || s.Renewals() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %d logins, %d renewals; log:\n%s", s.Logins(), s.Renewals(), logs.String())
		}
		if got, err := s.ProductionCookie(ctxT(t), "prismatic", false); err != nil || got != "RENEWCOOKIE" {
			t.Fatalf("read during renewal: %q, %v", got, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Reads keep working past the first token's max TTL.
	time.Sleep(time.Second)
	if got, err := s.ProductionCookie(ctxT(t), "prismatic", true); err != nil || got != "RENEWCOOKIE" {
		t.Fatalf("read after relogin: %q, %v", got, err)
	}
	t.Logf("%d logins, %d renewals", s.Logins(), s.Renewals())
	noSecrets(t, []string{logs.String()}, "RENEWCOOKIE")
}

// vaultProxy is a TLS reverse proxy in front of the test Vault, with a
// certificate from the cluster's CA. It can play dead (close every
// connection) and can intercept requests.
type vaultProxy struct {
	srv       *httptest.Server
	down      atomic.Bool
	intercept func(w http.ResponseWriter, r *http.Request, forward func(http.ResponseWriter, *http.Request)) // nil = forward
	mu        sync.Mutex
}

func (tv *testVault) proxy(t *testing.T) *vaultProxy {
	t.Helper()
	target, _ := url.Parse(tv.addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	pool := x509.NewCertPool()
	pool.AddCert(tv.cluster.CACert)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	p := &vaultProxy{}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		ic := p.intercept
		p.mu.Unlock()
		if ic != nil {
			ic(w, r, rp.ServeHTTP)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	p.srv.TLS = &tls.Config{Certificates: []tls.Certificate{proxyCert(t, tv.cluster.CACert, tv.cluster.CAKey)}}
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *vaultProxy) URL() string { return p.srv.URL }

func (p *vaultProxy) setIntercept(f func(http.ResponseWriter, *http.Request, func(http.ResponseWriter, *http.Request))) {
	p.mu.Lock()
	p.intercept = f
	p.mu.Unlock()
}

// proxyCert issues a certificate for 127.0.0.1 from the cluster's CA.
func proxyCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestStaleCookiesWhileVaultUnreachable(t *testing.T) {
	tv := startVault(t)
	const c1 = "STALECOOKIE1"
	tv.putCookie(t, "prismatic", c1)
	px := tv.proxy(t)
	log, logs := newLogger()
	const staleLimit = 3 * time.Second
	s := openStore(t, cookies.VaultConfig{Address: px.URL(), CAFile: tv.caFile, CacheTTL: 100 * time.Millisecond,
		StaleLimit: staleLimit, Timeout: 2 * time.Second,
		Auth: tv.appRole(t, "gw", "beamgate-reader", time.Hour, 2*time.Hour), Logger: log})
	ctx := ctxT(t)
	if got, err := s.ProductionCookie(ctx, "prismatic", false); err != nil || got != c1 {
		t.Fatalf("ProductionCookie = %q, %v", got, err)
	}
	confirmed := time.Now()

	px.down.Store(true) // Vault stops answering
	time.Sleep(300 * time.Millisecond)
	// Past the TTL, within the stale limit: the cached cookie serves, even
	// for a fresh request.
	for _, fresh := range []bool{false, true} {
		got, err := s.ProductionCookie(ctx, "prismatic", fresh)
		if time.Since(confirmed) < staleLimit-time.Second && (err != nil || got != c1) {
			t.Errorf("fresh=%v while Vault is down, within the stale limit: %q, %v", fresh, got, err)
		}
	}
	// Past the stale limit new sessions are refused with a clear message.
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = s.ProductionCookie(ctx, "prismatic", false)
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "Vault is unreachable") ||
		!strings.Contains(err.Error(), "new sessions are refused") || !strings.Contains(err.Error(), "stale limit") {
		t.Fatalf("past the stale limit: %v", err)
	}
	t.Logf("refusal message: %v", err)
	if time.Since(confirmed) < staleLimit {
		t.Errorf("refused %s after the last confirmation, before the stale limit", time.Since(confirmed))
	}
	noSecrets(t, []string{logs.String(), err.Error()}, c1)

	px.down.Store(false) // Vault is back
	if got, err := s.ProductionCookie(ctx, "prismatic", false); err != nil || got != c1 {
		t.Errorf("after Vault came back: %q, %v", got, err)
	}
}

// cookiesYAML is a gateway configuration's cookies block for this Vault,
// logging in with auth; extra lines go under vault:.
func (tv *testVault) cookiesYAML(auth cookies.VaultAuth, extra ...string) string {
	s := fmt.Sprintf("cookies:\n  backend: vault\n  vault:\n    address: %s\n    ca_file: %s\n    auth:\n      role_id_file: %s\n      secret_id_file: %s\n",
		tv.addr, tv.caFile, auth.RoleIDFile, auth.SecretIDFile)
	for _, e := range extra {
		s += "    " + e + "\n"
	}
	return s
}
