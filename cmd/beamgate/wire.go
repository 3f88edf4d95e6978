package main

// This file is beamgate's composition root: the one place that turns a
// validated configuration into running parts and wires them together.
// Every dependency is passed explicitly; nothing is recovered later by a
// type assertion.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway"
	"beamgate/gateway/config"
	"beamgate/gateway/relay"

	"go.uber.org/zap"
)

// vaultStartTimeout bounds the Vault login and first reads at start.
const vaultStartTimeout = 30 * time.Second

// openVault logs in to the Vault of cfg's cookies.vault block (backend
// vault), for the gateway and for the rotate and offboard commands.
func openVault(ctx context.Context, cfg *config.Config, log *zap.Logger) (*cookies.VaultStore, error) {
	if cfg.Cookies.Backend != "vault" {
		return nil, &config.Error{Key: "cookies.backend", Problem: fmt.Sprintf("is %q", cfg.Cookies.Backend),
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

// service is an assembled gateway: the SSH front door and the parts it
// was given, which the service owns and closes after the front door.
type service struct {
	srv *gateway.Server
	// closers run in order once the front door has stopped: the relay
	// (ending sessions a drain left), then the audit log (after every
	// last record), then the cookie store.
	closers []func() error
}

// assemble builds a gateway from a validated configuration: it loads or
// creates the host key and the gateway secret, opens the production cookie
// store and the audit log, and builds the relay and the front door.
func assemble(cfg *config.Config, log *zap.Logger) (*service, error) {
	if log == nil {
		log = zap.NewNop()
	}
	for _, p := range []string{cfg.HostKey, cfg.GatewaySecretFile, cfg.Audit.Path} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
	}
	signer, err := gateway.LoadOrCreateHostKey(cfg.HostKey)
	if err != nil {
		return nil, err
	}
	secret, err := cookies.LoadOrCreateSecret(cfg.GatewaySecretFile)
	if err != nil {
		return nil, err
	}
	svc := &service{}
	fail := func(err error) (*service, error) {
		svc.closeParts()
		return nil, err
	}
	var (
		store cookies.Source
		vs    *cookies.VaultStore
	)
	switch cfg.Cookies.Backend {
	case "file":
		fs, err := cookies.NewFileStore(cfg.Cookies.File)
		if err != nil {
			return nil, err
		}
		if err := checkFileCookies(fs, cfg); err != nil {
			return nil, err
		}
		store = fs
	case "vault":
		vs, err = openVault(context.Background(), cfg, log)
		if err != nil {
			return nil, err
		}
		svc.closers = append(svc.closers, vs.Close)
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
	rl := relay.New(relay.Config{Audit: alog, Cookies: store, Log: log.Named("relay")})
	svc.closers = append([]func() error{func() error { rl.Close(); return nil }, alog.Close}, svc.closers...)
	opts := gateway.Options{
		Config:     cfg,
		HostSigner: signer,
		Gateway:    cookies.Gateway{Secret: secret, Window: cfg.CookieWindow},
		Audit:      alog,
		Relay:      rl,
		Cookies:    store, // the views try production cookies as the relay does
		Log:        log.Named("ssh"),
	}
	if vs != nil {
		opts.Revocations = vs.Revocations()
		opts.RevocationStaleLimit = vs.Config().StaleLimit
	}
	svc.srv, err = gateway.NewServer(opts)
	if err != nil {
		return fail(err)
	}
	return svc, nil
}

// Close closes the front door and every connection, then the parts.
func (s *service) Close() error {
	return errors.Join(s.srv.Close(), s.closeParts())
}

// Shutdown stops accepting, waits for connections to end or ctx, then
// closes the parts.
func (s *service) Shutdown(ctx context.Context) error {
	return errors.Join(s.srv.Shutdown(ctx), s.closeParts())
}

// closeParts runs the closers once.
func (s *service) closeParts() error {
	closers := s.closers
	s.closers = nil
	var errs []error
	for _, c := range closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// checkFileCookies makes a cluster without a line in the cookie file a
// start error naming the fix.
func checkFileCookies(fs *cookies.FileStore, cfg *config.Config) error {
	have, err := fs.Clusters()
	if err != nil {
		return err
	}
	for _, cl := range slices.Sorted(maps.Keys(cfg.Clusters)) {
		if !slices.Contains(have, cl) {
			return &config.Error{Key: "cookies.file", Problem: fmt.Sprintf("%s has no cookie for cluster %q", cfg.Cookies.File, cl),
				Fix: fmt.Sprintf("add a line %q with the cluster's production cookie", cl+": COOKIE")}
		}
	}
	return nil
}

// checkVaultCookies reads every configured cluster's cookie once, so a
// missing secret is a start error naming the path rather than a refused
// session later.
func checkVaultCookies(vs *cookies.VaultStore, cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), vaultStartTimeout)
	defer cancel()
	for _, cl := range slices.Sorted(maps.Keys(cfg.Clusters)) {
		if _, err := vs.ProductionCookie(ctx, cl, false); err != nil {
			if errors.Is(err, cookies.ErrNoCookie) {
				vc := vs.Config()
				return &config.Error{Key: "clusters." + cl, Problem: err.Error(),
					Fix: fmt.Sprintf("write the cluster's cookie to Vault: vault kv put %s/%s cookie=... (field %q)", vc.KVMount, vs.ClusterPath(cl), cookies.CookieField)}
			}
			return err
		}
	}
	return nil
}
