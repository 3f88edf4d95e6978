package cookies

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"go.uber.org/zap"
)

// Defaults for VaultConfig.
const (
	DefaultKVMount         = "secret"
	DefaultPathPrefix      = "beamgate/clusters"
	DefaultRevocationsPath = "beamgate/revocations"
	DefaultRotationsPath   = "beamgate/rotations"
	// DefaultGatewaySecretPath holds the gateway-cookie secret every
	// replica derives engineers' cookies from.
	DefaultGatewaySecretPath = "beamgate/gateway-secret"
	DefaultCacheTTL          = time.Minute
	DefaultStaleLimit        = time.Hour
	DefaultVaultTimeout      = 5 * time.Second
	DefaultAppRoleMount      = "approle"

	// CookieField is the KV v2 field holding a cluster's cookie.
	CookieField = "cookie"
)

// Auth methods for VaultAuth.Method.
const (
	AuthAppRole = "approle"
	AuthToken   = "token"
)

// maxCredentialFile bounds role id, secret id and token files.
const maxCredentialFile = 64 << 10

// maxCookieLen bounds a cookie read from Vault: Erlang cookies are atoms,
// at most 255 characters.
const maxCookieLen = 255

// retryOtherVault is how long after a failed Vault read a cluster's cached
// cookie is served without asking Vault again, so that handshakes do not
// each wait for an unreachable Vault.
const retryOtherVault = 2 * time.Second

// ErrVaultUnreachable reports that Vault could not be asked and no cached
// cookie young enough to serve was left. The gateway refuses new sessions;
// live sessions are not affected.
var ErrVaultUnreachable = errors.New("cookies: Vault is unreachable")

// VaultAuth configures how beamgate logs in to Vault.
type VaultAuth struct {
	// Method is "approle" (default when role_id_file is set) or "token".
	Method string `yaml:"method"`
	// RoleIDFile and SecretIDFile hold the AppRole credentials.
	RoleIDFile   string `yaml:"role_id_file"`
	SecretIDFile string `yaml:"secret_id_file"`
	// SecretIDWrapped says the secret id file holds a response-wrapping
	// token to unwrap (as Vault Agent or a CI system delivers it).
	SecretIDWrapped bool `yaml:"secret_id_wrapped"`
	// TokenFile holds a token for the token method; without it the
	// VAULT_TOKEN environment variable is used. The file is read again at
	// every re-login, so a Vault Agent sink keeps beamgate logged in.
	TokenFile string `yaml:"token_file"`
	// Mount is the auth mount path (default "approle").
	Mount string `yaml:"mount"`
}

// VaultConfig configures the Vault cookie backend. It is plain data so that
// the gateway configuration can embed it.
type VaultConfig struct {
	Address string `yaml:"address"` // https://vault.example:8200
	CAFile  string `yaml:"ca_file"` // PEM bundle; "" = system roots
	// InsecureSkipVerify turns off TLS verification. VAULT_SKIP_VERIFY in
	// the environment is refused unless this is set too.
	InsecureSkipVerify bool      `yaml:"insecure_skip_verify"`
	Auth               VaultAuth `yaml:"auth"`

	KVMount         string `yaml:"kv_mount"`         // KV v2 mount (default "secret")
	PathPrefix      string `yaml:"path_prefix"`      // cluster secrets (default "beamgate/clusters")
	RevocationsPath string `yaml:"revocations_path"` // revocation list (default "beamgate/revocations")
	RotationsPath   string `yaml:"rotations_path"`   // rotation state (default "beamgate/rotations")
	// GatewaySecretPath holds the gateway-cookie secret (default
	// "beamgate/gateway-secret"), shared by every replica.
	GatewaySecretPath string `yaml:"gateway_secret_path"`

	// CacheTTL is how long a cookie is served without asking Vault (1m).
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// StaleLimit is how long after its last successful read a cookie is
	// still served while Vault is unreachable (1h).
	StaleLimit time.Duration `yaml:"stale_limit"`
	// Timeout bounds one Vault request (5s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetries is the Vault client's retry count for 5xx and connection
	// errors (default 1; -1 for none).
	MaxRetries int `yaml:"max_retries"`

	// Logger receives Vault events; never a cookie or a token. nil = no logs.
	Logger *zap.Logger `yaml:"-"`
	// ObserveRequest, when set, is told how long each HTTP request to
	// Vault took (for metrics), whatever its outcome.
	ObserveRequest func(time.Duration) `yaml:"-"`
}

func (c VaultConfig) withDefaults() VaultConfig {
	if c.KVMount == "" {
		c.KVMount = DefaultKVMount
	}
	if c.PathPrefix == "" {
		c.PathPrefix = DefaultPathPrefix
	}
	if c.RevocationsPath == "" {
		c.RevocationsPath = DefaultRevocationsPath
	}
	if c.RotationsPath == "" {
		c.RotationsPath = DefaultRotationsPath
	}
	if c.GatewaySecretPath == "" {
		c.GatewaySecretPath = DefaultGatewaySecretPath
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.StaleLimit <= 0 {
		c.StaleLimit = DefaultStaleLimit
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultVaultTimeout
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = 1
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.Auth.Mount == "" {
		c.Auth.Mount = DefaultAppRoleMount
	}
	if c.Auth.Method == "" {
		c.Auth.Method = AuthToken
		if c.Auth.RoleIDFile != "" {
			c.Auth.Method = AuthAppRole
		}
	}
	c.KVMount = strings.Trim(c.KVMount, "/")
	c.PathPrefix = strings.Trim(c.PathPrefix, "/")
	c.RevocationsPath = strings.Trim(c.RevocationsPath, "/")
	c.RotationsPath = strings.Trim(c.RotationsPath, "/")
	c.GatewaySecretPath = strings.Trim(c.GatewaySecretPath, "/")
	return c
}

// Validate reports configuration errors without touching the network.
func (c VaultConfig) Validate() error {
	c = c.withDefaults()
	if c.Address == "" {
		return errors.New("cookies: vault address is required")
	}
	if !strings.HasPrefix(c.Address, "https://") && !strings.HasPrefix(c.Address, "http://") {
		return fmt.Errorf("cookies: vault address %q must start with https://", c.Address)
	}
	if strings.HasPrefix(c.Address, "http://") && !c.InsecureSkipVerify {
		return fmt.Errorf("cookies: vault address %q is plain http; use https or set insecure_skip_verify", c.Address)
	}
	if v := os.Getenv("VAULT_SKIP_VERIFY"); v != "" && !c.InsecureSkipVerify {
		if skip, err := strconv.ParseBool(v); err != nil || skip {
			return errors.New("cookies: VAULT_SKIP_VERIFY is set in the environment; beamgate refuses to skip TLS verification unless the configuration sets insecure_skip_verify")
		}
	}
	switch c.Auth.Method {
	case AuthAppRole:
		if c.Auth.RoleIDFile == "" || c.Auth.SecretIDFile == "" {
			return errors.New("cookies: vault auth approle needs role_id_file and secret_id_file")
		}
	case AuthToken:
		if c.Auth.TokenFile == "" && os.Getenv(vault.EnvVaultToken) == "" {
			return errors.New("cookies: vault auth token needs token_file or VAULT_TOKEN")
		}
	default:
		return fmt.Errorf("cookies: unknown vault auth method %q (want approle or token)", c.Auth.Method)
	}
	for _, p := range []string{c.KVMount, c.PathPrefix, c.RevocationsPath, c.RotationsPath, c.GatewaySecretPath} {
		if p == "" || strings.Contains(p, "..") {
			return fmt.Errorf("cookies: bad vault path %q", p)
		}
	}
	return nil
}

// VaultStore reads production cookies from Vault KV v2 and caches them. It
// implements Source and PreviousSource. Its methods are safe for
// concurrent use.
//
// Concurrency contract: loginMu serialises logins and token renewal.
// mu guards the cache map only and is released before an entry's lock is
// taken; a clusterEntry's mu is held across that cluster's Vault read, so
// concurrent handshakes for one cluster share one read. Lock order: a
// clusterEntry's mu before loginMu (a read that finds its token expired
// logs in again while holding its entry), never the reverse; mu is never
// held with either.
type VaultStore struct {
	cfg    VaultConfig
	client *vault.Client
	kv     *vault.KVv2
	log    *zap.Logger
	now    func() time.Time

	loginMu sync.Mutex // serializes logins
	logins  atomic.Int64
	renewed atomic.Int64

	mu    sync.Mutex
	cache map[string]*clusterEntry

	cancel context.CancelFunc
	done   chan struct{}
}

// clusterEntry is one cluster's cached cookie. Its mutex serializes Vault
// reads for the cluster so concurrent handshakes share one read.
type clusterEntry struct {
	mu       sync.Mutex
	cookie   string
	version  int
	fetched  time.Time // last successful read
	failed   time.Time // last failed read while Vault was unreachable
	prev     string    // cookie of version-1, "" if unknown or gone
	prevOf   int       // the version prev belongs to (prev is version prevOf-1)
	prevRead bool
}

// NewVaultStore connects to Vault, logs in, and starts renewing the token
// in the background until Close. It does not read any cookie yet.
func NewVaultStore(ctx context.Context, cfg VaultConfig) (*VaultStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	client, err := newVaultClient(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &VaultStore{
		cfg:    cfg,
		client: client,
		kv:     client.KVv2(cfg.KVMount),
		log:    log.Named("vault"),
		now:    time.Now,
		cache:  make(map[string]*clusterEntry),
		done:   make(chan struct{}),
	}
	secret, err := s.login(ctx)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.keepLoggedIn(wctx, secret)
	return s, nil
}

// newVaultClient builds a client from cfg alone: environment variables
// that could turn off TLS verification or redirect traffic
// (VAULT_SKIP_VERIFY, VAULT_AGENT_ADDR, VAULT_PROXY_ADDR, VAULT_HTTP_PROXY,
// VAULT_CACERT, VAULT_TLS_SERVER_NAME, ...) are overridden.
func newVaultClient(cfg VaultConfig) (*vault.Client, error) {
	vc := vault.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("cookies: vault client defaults: %w", vc.Error)
	}
	vc.Address = cfg.Address
	vc.AgentAddress = "" // VAULT_AGENT_ADDR would override Address
	vc.Timeout = cfg.Timeout
	vc.MaxRetries = cfg.MaxRetries
	vc.MinRetryWait = 100 * time.Millisecond
	vc.MaxRetryWait = 500 * time.Millisecond
	vc.Limiter = nil
	vc.SRVLookup = false
	vc.DisableRedirects = false
	tr, ok := vc.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("cookies: unexpected vault transport %T", vc.HttpClient.Transport)
	}
	tr.Proxy = nil // never through VAULT_PROXY_ADDR / HTTP_PROXY
	tlsCfg := tr.TLSClientConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
		tr.TLSClientConfig = tlsCfg
	}
	tlsCfg.MinVersion = tls.VersionTLS12
	tlsCfg.InsecureSkipVerify = cfg.InsecureSkipVerify
	tlsCfg.ServerName = ""
	tlsCfg.Certificates = nil
	tlsCfg.RootCAs = nil
	if cfg.CAFile != "" {
		pem, err := readBounded(cfg.CAFile, 4<<20)
		if err != nil {
			return nil, fmt.Errorf("cookies: vault ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cookies: vault ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	client, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("cookies: vault client: %w", err)
	}
	if cfg.ObserveRequest != nil {
		// NewClient keeps vc's http.Client: wrap its transport now that
		// the TLS setup on the *http.Transport is done.
		vc.HttpClient.Transport = timedTransport{next: tr, observe: cfg.ObserveRequest}
	}
	// NewClient reads VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS; only
	// the token method may use the environment's token, at login.
	client.ClearToken()
	client.ClearNamespace()
	client.SetHeaders(http.Header{vault.RequestHeaderName: {"true"}})
	if client.Address() != strings.TrimRight(cfg.Address, "/") && client.Address() != cfg.Address {
		return nil, fmt.Errorf("cookies: vault client address %q differs from the configured %q", client.Address(), cfg.Address)
	}
	if tlsCfg.InsecureSkipVerify != cfg.InsecureSkipVerify {
		return nil, errors.New("cookies: vault TLS verification setting was overridden")
	}
	return client, nil
}

// readBounded reads a small file, refusing one larger than limit.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// readCredential reads a one-line credential file. Its content is never
// put in an error.
func readCredential(what, path string) (string, error) {
	data, err := readBounded(path, maxCredentialFile)
	if err != nil {
		return "", fmt.Errorf("cookies: vault %s: %w", what, err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("cookies: vault %s %s is empty", what, path)
	}
	return v, nil
}

// Client returns the logged-in Vault client, for callers sharing the login
// (revocations, rotation).
func (s *VaultStore) Client() *vault.Client { return s.client }

// Config returns the store's configuration with defaults filled in.
func (s *VaultStore) Config() VaultConfig { return s.cfg }

// Logins returns how many times the store has logged in to Vault, and
// Renewals how many times its token was renewed.
func (s *VaultStore) Logins() int64   { return s.logins.Load() }
func (s *VaultStore) Renewals() int64 { return s.renewed.Load() }

// Close stops the token renewal. It does not revoke the token.
func (s *VaultStore) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
	return nil
}

// login authenticates and sets the client's token. The returned secret
// carries the token's lease for the lifetime watcher.
func (s *VaultStore) login(ctx context.Context) (*vault.Secret, error) {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout*time.Duration(s.cfg.MaxRetries+2))
	defer cancel()
	a := s.cfg.Auth
	switch a.Method {
	case AuthAppRole:
		roleID, err := readCredential("role_id_file", a.RoleIDFile)
		if err != nil {
			return nil, err
		}
		opts := []approle.LoginOption{approle.WithMountPath(a.Mount)}
		if a.SecretIDWrapped {
			opts = append(opts, approle.WithWrappingToken())
		}
		m, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromFile: a.SecretIDFile}, opts...)
		if err != nil {
			return nil, fmt.Errorf("cookies: vault approle: %w", err)
		}
		secret, err := s.client.Auth().Login(ctx, m)
		if err != nil {
			return nil, s.vaultErr("approle login", err)
		}
		if secret == nil || secret.Auth == nil {
			return nil, errors.New("cookies: vault approle login returned no token")
		}
		s.logins.Add(1)
		s.log.Info("logged in to vault", zap.String("method", a.Method),
			zap.Int("ttl_s", secret.Auth.LeaseDuration), zap.Bool("renewable", secret.Auth.Renewable))
		return secret, nil
	default:
		token := os.Getenv(vault.EnvVaultToken)
		if a.TokenFile != "" {
			var err error
			if token, err = readCredential("token_file", a.TokenFile); err != nil {
				return nil, err
			}
		}
		if token == "" {
			return nil, errors.New("cookies: vault token is empty")
		}
		s.client.SetToken(token)
		self, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return nil, s.vaultErr("token lookup", err)
		}
		ttl, _ := self.TokenTTL()
		renewable, _ := self.TokenIsRenewable()
		s.logins.Add(1)
		s.log.Info("logged in to vault", zap.String("method", a.Method),
			zap.Duration("ttl", ttl), zap.Bool("renewable", renewable))
		return &vault.Secret{Auth: &vault.SecretAuth{
			ClientToken: token, Renewable: renewable, LeaseDuration: int(ttl / time.Second),
		}}, nil
	}
}

// keepLoggedIn renews the token with a lifetime watcher and logs in again
// when renewal stops (max TTL, or a failed renewal), backing off while
// Vault is unreachable.
func (s *VaultStore) keepLoggedIn(ctx context.Context, secret *vault.Secret) {
	defer close(s.done)
	backoff := time.Second
	for ctx.Err() == nil {
		if secret == nil {
			var err error
			if secret, err = s.login(ctx); err != nil {
				s.log.Warn("vault login failed; retrying", zap.Error(err), zap.Duration("in", backoff))
				if !sleepCtx(ctx, backoff) {
					return
				}
				backoff = min(backoff*2, 30*time.Second)
				continue
			}
			backoff = time.Second
		}
		s.watch(ctx, secret)
		secret = nil
	}
}

// watch renews secret's token until it can no longer be renewed.
func (s *VaultStore) watch(ctx context.Context, secret *vault.Secret) {
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	if !secret.Auth.Renewable {
		if ttl <= 0 { // a non-expiring token (root): nothing to do
			<-ctx.Done()
			return
		}
		// Log in again at two thirds of a non-renewable token's life.
		sleepCtx(ctx, ttl*2/3)
		return
	}
	w, err := s.client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{
		Secret:        secret,
		RenewBehavior: vault.RenewBehaviorErrorOnErrors,
	})
	if err != nil {
		s.log.Warn("vault token watcher", zap.Error(err))
		sleepCtx(ctx, time.Second)
		return
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.DoneCh():
			if err != nil {
				s.log.Warn("vault token renewal failed; logging in again", zap.Error(err))
				sleepCtx(ctx, 500*time.Millisecond)
			} else {
				s.log.Info("vault token reached its max TTL; logging in again")
			}
			return
		case r := <-w.RenewCh():
			s.renewed.Add(1)
			var ttl int
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				ttl = r.Secret.Auth.LeaseDuration
			}
			s.log.Debug("vault token renewed", zap.Int("ttl_s", ttl))
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// forget drops cluster's cached cookie, so the next request reads Vault.
func (s *VaultStore) forget(cluster string) {
	s.mu.Lock()
	delete(s.cache, cluster)
	s.mu.Unlock()
}

// ClusterPath returns the KV path (below the mount) of cluster's secret.
func (s *VaultStore) ClusterPath(cluster string) string { return s.cfg.PathPrefix + "/" + cluster }

// CheckCluster refuses cluster names that would escape the prefix.
func CheckCluster(cluster string) error {
	if cluster == "" || len(cluster) > 255 || strings.ContainsAny(cluster, "/\\?#%") ||
		cluster == "." || cluster == ".." {
		return fmt.Errorf("cookies: bad cluster name %q", cluster)
	}
	for _, r := range cluster {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("cookies: bad cluster name %q", cluster)
		}
	}
	return nil
}

// ProductionCookie returns cluster's current cookie, from the cache when
// it is younger than the cache TTL. fresh reads Vault regardless. When
// Vault is unreachable, a cached cookie is served until the stale limit;
// after that the error wraps ErrVaultUnreachable.
func (s *VaultStore) ProductionCookie(ctx context.Context, cluster string, fresh bool) (string, error) {
	e, err := s.entry(ctx, cluster, fresh)
	if err != nil {
		return "", err
	}
	return e.cookie, nil
}

// ProductionCookies returns cluster's current cookie and the cookie of the
// KV version before it ("" when there is none, or it was deleted). During
// a rotation some nodes may still run the previous cookie: the relay tries
// it after a fresh current cookie was refused.
func (s *VaultStore) ProductionCookies(ctx context.Context, cluster string) (current, previous string, err error) {
	e, err := s.entry(ctx, cluster, false)
	if err != nil {
		return "", "", err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.prevOf != e.version || !e.prevRead {
		prev, err := s.readVersion(ctx, cluster, e.version-1)
		switch {
		case err == nil:
			e.prev = prev
		case errors.Is(err, ErrNoCookie):
			e.prev = ""
		default: // serve without the previous cookie; retry next time
			s.log.Warn("reading previous cookie version", zap.String("cluster", cluster), zap.Error(err))
			return e.cookie, "", nil
		}
		e.prevOf, e.prevRead = e.version, true
	}
	return e.cookie, e.prev, nil
}

// CookieVersion returns the KV version of the cached (or freshly read)
// cookie of cluster.
func (s *VaultStore) CookieVersion(ctx context.Context, cluster string) (int, error) {
	e, err := s.entry(ctx, cluster, false)
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.version, nil
}

// entry returns cluster's cache entry, refreshed from Vault when it is
// older than the TTL or fresh is set.
func (s *VaultStore) entry(ctx context.Context, cluster string, fresh bool) (*clusterEntry, error) {
	if err := CheckCluster(cluster); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e := s.cache[cluster]
	if e == nil {
		e = &clusterEntry{}
		s.cache[cluster] = e
	}
	s.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := s.now()
	if e.cookie != "" && !fresh {
		if now.Sub(e.fetched) < s.cfg.CacheTTL {
			return e, nil
		}
		// Vault failed a moment ago: serve stale without waiting again.
		if now.Sub(e.failed) < retryOtherVault && now.Sub(e.fetched) <= s.cfg.StaleLimit {
			return e, nil
		}
	}
	cookie, version, err := s.readCurrent(ctx, cluster)
	if err == nil {
		if version != e.version {
			e.prevRead = false
		}
		e.cookie, e.version, e.fetched, e.failed = cookie, version, s.now(), time.Time{}
		return e, nil
	}
	if !errors.Is(err, ErrVaultUnreachable) {
		return nil, err
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	e.failed = s.now()
	cause := unreachableCause(err)
	if e.cookie == "" {
		return nil, fmt.Errorf("%w and no cookie for cluster %q is cached; new sessions are refused until Vault answers (%v)",
			ErrVaultUnreachable, cluster, cause)
	}
	age := e.failed.Sub(e.fetched)
	if age > s.cfg.StaleLimit {
		return nil, fmt.Errorf("%w and the cached cookie for cluster %q was last confirmed %s ago, past the stale limit of %s; new sessions are refused until Vault answers (%v)",
			ErrVaultUnreachable, cluster, age.Round(time.Second), s.cfg.StaleLimit, cause)
	}
	s.log.Warn("vault unreachable; serving cached cookie", zap.String("cluster", cluster),
		zap.Int("version", e.version), zap.Duration("age", age.Round(time.Second)), zap.Error(err))
	return e, nil
}

// readCurrent reads cluster's newest cookie and its version.
func (s *VaultStore) readCurrent(ctx context.Context, cluster string) (string, int, error) {
	sec, err := s.kvGet(ctx, s.ClusterPath(cluster), 0)
	if err != nil {
		return "", 0, s.clusterErr(cluster, err)
	}
	cookie, err := cookieOf(cluster, sec)
	if err != nil {
		return "", 0, err
	}
	return cookie, sec.VersionMetadata.Version, nil
}

// readVersion reads one version of cluster's cookie.
func (s *VaultStore) readVersion(ctx context.Context, cluster string, version int) (string, error) {
	if version < 1 {
		return "", fmt.Errorf("%w %q version %d", ErrNoCookie, cluster, version)
	}
	sec, err := s.kvGet(ctx, s.ClusterPath(cluster), version)
	if err != nil {
		return "", s.clusterErr(cluster, err)
	}
	return cookieOf(cluster, sec)
}

func (s *VaultStore) clusterErr(cluster string, err error) error {
	if errors.Is(err, vault.ErrSecretNotFound) {
		return fmt.Errorf("%w %q in vault at %s/%s", ErrNoCookie, cluster, s.cfg.KVMount, s.ClusterPath(cluster))
	}
	return err
}

// cookieOf extracts and checks the cookie field of a KV secret.
func cookieOf(cluster string, sec *vault.KVSecret) (string, error) {
	if sec == nil || sec.VersionMetadata == nil {
		return "", fmt.Errorf("%w %q: empty vault answer", ErrNoCookie, cluster)
	}
	if sec.Data == nil {
		return "", fmt.Errorf("%w %q: version %d is deleted", ErrNoCookie, cluster, sec.VersionMetadata.Version)
	}
	c, ok := sec.Data[CookieField].(string)
	if !ok || c == "" {
		return "", fmt.Errorf("%w %q: version %d has no %q string field", ErrNoCookie, cluster,
			sec.VersionMetadata.Version, CookieField)
	}
	if len(c) > maxCookieLen {
		return "", fmt.Errorf("cookies: cluster %q version %d: cookie is longer than %d characters",
			cluster, sec.VersionMetadata.Version, maxCookieLen)
	}
	return c, nil
}

// kvGet reads a KV v2 secret (version 0 = newest), logging in again once
// if the token was refused. Network failures and 5xx answers are wrapped
// in ErrVaultUnreachable.
func (s *VaultStore) kvGet(ctx context.Context, path string, version int) (*vault.KVSecret, error) {
	get := func() (*vault.KVSecret, error) {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout*time.Duration(s.cfg.MaxRetries+1))
		defer cancel()
		if version > 0 {
			return s.kv.GetVersion(rctx, path, version)
		}
		return s.kv.Get(rctx, path)
	}
	sec, err := get()
	if isForbidden(err) {
		if _, lerr := s.login(ctx); lerr == nil {
			sec, err = get()
		}
	}
	if err != nil {
		return nil, s.vaultErr("reading "+s.cfg.KVMount+"/"+path, err)
	}
	return sec, nil
}

// vaultErr classifies a Vault client error: answers that show Vault is not
// serving (connection errors, 5xx, timeouts) wrap ErrVaultUnreachable.
// Vault's own error messages never contain secret data.
func (s *VaultStore) vaultErr(op string, err error) error {
	if errors.Is(err, vault.ErrSecretNotFound) {
		return err
	}
	var re *vault.ResponseError
	if errors.As(err, &re) && re.StatusCode < 500 {
		return fmt.Errorf("cookies: vault %s: %w", op, err)
	}
	return fmt.Errorf("cookies: vault %s: %w", op, &unreachableError{err: err})
}

// unreachableError marks a failure to reach a serving Vault.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string        { return ErrVaultUnreachable.Error() + ": " + e.err.Error() }
func (e *unreachableError) Unwrap() []error      { return []error{ErrVaultUnreachable, e.err} }
func (e *unreachableError) Is(target error) bool { return target == ErrVaultUnreachable }

// unreachableCause returns the network error under an unreachable error.
func unreachableCause(err error) error {
	var ue *unreachableError
	if errors.As(err, &ue) {
		return ue.err
	}
	return err
}

func isForbidden(err error) bool {
	var re *vault.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// isCASMismatch reports a KV v2 check-and-set refusal.
func isCASMismatch(err error) bool {
	var re *vault.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, m := range re.Errors {
		if strings.Contains(m, "check-and-set parameter did not match") {
			return true
		}
	}
	return false
}

func nopLogger() *zap.Logger { return zap.NewNop() }

// timedTransport tells observe how long each request took.
type timedTransport struct {
	next    http.RoundTripper
	observe func(time.Duration)
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.observe(time.Since(start))
	return resp, err
}
