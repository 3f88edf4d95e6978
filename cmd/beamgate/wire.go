package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/relay"

	"go.uber.org/zap"
)

// The file and Vault stores are the relay's production cookie sources; the
// Vault store also yields the previous cookie during a rotation, and its
// revocation list is what the front door enforces.
var (
	_ relay.CookieSource         = (*cookies.FileStore)(nil)
	_ relay.CookieSource         = (*cookies.VaultStore)(nil)
	_ relay.PreviousCookieSource = (*cookies.VaultStore)(nil)
	_ RevocationSource           = (*cookies.Revocations)(nil)
)

// vaultStartTimeout bounds the Vault login and first reads at start.
const vaultStartTimeout = 30 * time.Second

// OpenVault logs in to the Vault of cfg's cookies.vault block (backend
// vault), for the gateway and for the rotate and offboard commands.
func OpenVault(ctx context.Context, cfg *Config, log *zap.Logger) (*cookies.VaultStore, error) {
	if cfg.Cookies.Backend != "vault" {
		return nil, &ConfigError{Key: "cookies.backend", Problem: fmt.Sprintf("is %q", cfg.Cookies.Backend),
			Fix: "set backend: vault and a cookies.vault block; rotation and offboarding need Vault"}
	}
	vc := cfg.Cookies.Vault
	if log != nil {
		vc.Logger = log.Named("cookies")
	}
	ctx, cancel := context.WithTimeout(ctx, vaultStartTimeout)
	defer cancel()
	return cookies.NewVaultStore(ctx, vc)
}

// FromConfig assembles a Server from a validated configuration: it loads
// or creates the host key and the gateway secret, opens the production
// cookie store and the audit log, and builds the relay. Closing the Server
// also closes the audit log.
func FromConfig(cfg *Config, log *zap.Logger) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	for _, p := range []string{cfg.HostKey, cfg.GatewaySecretFile, cfg.Audit.Path} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
	}
	signer, err := LoadOrCreateHostKey(cfg.HostKey)
	if err != nil {
		return nil, err
	}
	secret, err := cookies.LoadOrCreateSecret(cfg.GatewaySecretFile)
	if err != nil {
		return nil, err
	}
	var (
		store   relay.CookieSource
		vs      *cookies.VaultStore
		closers []func() error
	)
	fail := func(err error) (*Server, error) {
		for _, c := range closers {
			c()
		}
		return nil, err
	}
	switch cfg.Cookies.Backend {
	case "file":
		fs, err := cookies.NewFileStore(cfg.Cookies.File)
		if err != nil {
			return nil, err
		}
		have, err := fs.Clusters()
		if err != nil {
			return nil, err
		}
		for _, cl := range sortedKeys(cfg.Clusters) {
			if !slices.Contains(have, cl) {
				return nil, &ConfigError{Key: "cookies.file", Problem: fmt.Sprintf("%s has no cookie for cluster %q", cfg.Cookies.File, cl),
					Fix: fmt.Sprintf("add a line %q with the cluster's production cookie", cl+": COOKIE")}
			}
		}
		store = fs
	case "vault":
		vs, err = OpenVault(context.Background(), cfg, log)
		if err != nil {
			return nil, err
		}
		closers = append(closers, vs.Close)
		if err := checkVaultCookies(vs, cfg); err != nil {
			return fail(err)
		}
		store = vs
	default:
		return nil, fmt.Errorf("cookies.backend %q is not supported", cfg.Cookies.Backend)
	}
	alog, err := audit.Open(cfg.Audit.Path, audit.Options{})
	if err != nil {
		return fail(err)
	}
	closers = append([]func() error{alog.Close}, closers...)
	rl := relay.New(relay.Config{Audit: alog, Cookies: store, Log: log.Named("relay")})
	opts := Options{
		Config:     cfg,
		HostSigner: signer,
		Gateway:    cookies.Gateway{Secret: secret, Window: cfg.CookieWindow},
		Audit:      alog,
		Relay:      rl,
		Log:        log.Named("ssh"),
	}
	if vs != nil {
		opts.Revocations = vs.Revocations()
		opts.RevocationStaleLimit = vs.Config().StaleLimit
	}
	srv, err := NewServer(opts)
	if err != nil {
		return fail(err)
	}
	srv.closers = append(srv.closers, closers...)
	return srv, nil
}

// checkVaultCookies reads every configured cluster's cookie once, so a
// missing secret is a start error naming the path rather than a refused
// session later.
func checkVaultCookies(vs *cookies.VaultStore, cfg *Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), vaultStartTimeout)
	defer cancel()
	for _, cl := range sortedKeys(cfg.Clusters) {
		if _, err := vs.ProductionCookie(ctx, cl, false); err != nil {
			if errors.Is(err, cookies.ErrNoCookie) {
				vc := vs.Config()
				return &ConfigError{Key: "clusters." + cl, Problem: err.Error(),
					Fix: fmt.Sprintf("write the cluster's cookie to Vault: vault kv put %s/%s cookie=... (field %q)", vc.KVMount, vs.ClusterPath(cl), cookies.CookieField)}
			}
			return err
		}
	}
	return nil
}

// closeAll runs the server's closers, joining their errors.
func (s *Server) closeAll() error {
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	var errs []error
	for _, c := range closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}
