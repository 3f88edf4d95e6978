package gateway

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/relay"

	"go.uber.org/zap"
)

// The file store is the relay's production cookie source.
var _ relay.CookieSource = (*cookies.FileStore)(nil)

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
	var store relay.CookieSource
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
	default:
		return nil, fmt.Errorf("cookies.backend %q is not supported", cfg.Cookies.Backend)
	}
	alog, err := audit.Open(cfg.Audit.Path, audit.Options{})
	if err != nil {
		return nil, err
	}
	rl := relay.New(relay.Config{Audit: alog, Cookies: store, Log: log.Named("relay")})
	srv, err := NewServer(Options{
		Config:     cfg,
		HostSigner: signer,
		Gateway:    cookies.Gateway{Secret: secret, Window: cfg.CookieWindow},
		Audit:      alog,
		Relay:      rl,
		Log:        log.Named("ssh"),
	})
	if err != nil {
		alog.Close()
		return nil, err
	}
	srv.closers = append(srv.closers, alog.Close)
	return srv, nil
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
