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
	"sync/atomic"
	"time"

	"beamgate/audit"
	"beamgate/audit/vaultanchor"
	"beamgate/cookies"
	"beamgate/gateway"
	"beamgate/gateway/config"
	"beamgate/gateway/ops"
	"beamgate/gateway/relay"

	"go.uber.org/zap"
)

// vaultStartTimeout bounds the Vault login and first reads at start.
const vaultStartTimeout = 30 * time.Second

// openVault logs in to the Vault of cfg's cookies.vault block (backend
// vault), for the gateway and for the rotate and offboard commands.
func openVault(ctx context.Context, cfg *config.Config, log *zap.Logger, observe ...func(time.Duration)) (*cookies.VaultStore, error) {
	if cfg.Cookies.Backend != "vault" {
		return nil, &config.Error{Key: "cookies.backend", Problem: fmt.Sprintf("is %q", cfg.Cookies.Backend),
			Fix: "set backend: vault and a cookies.vault block; rotation and offboarding need Vault"}
	}
	vc := cfg.Cookies.Vault
	if log != nil {
		vc.Logger = log.Named("cookies")
	}
	if len(observe) > 0 {
		vc.ObserveRequest = observe[0]
	}
	ctx, cancel := context.WithTimeout(ctx, vaultStartTimeout)
	defer cancel()
	return cookies.NewVaultStore(ctx, vc)
}

// gatewaySecret is what derives engineers' gateway cookies: with Vault,
// the secret every replica reads there (created by the first), re-read
// every cookies.DefaultSecretWatchInterval so a rotation reaches every
// replica; otherwise the gateway_secret_file (created on first start).
func gatewaySecret(cfg *config.Config, vs *cookies.VaultStore, log *zap.Logger, svc *service) (cookies.Gateway, error) {
	if vs == nil {
		secret, err := cookies.LoadOrCreateSecret(cfg.GatewaySecretFile)
		if err != nil {
			return cookies.Gateway{}, err
		}
		return cookies.Gateway{Secret: secret, Window: cfg.CookieWindow}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), vaultStartTimeout)
	defer cancel()
	where := vs.Config().KVMount + "/" + vs.GatewaySecretPath()
	secrets, err := vs.GatewaySecrets(ctx)
	if err != nil {
		return cookies.Gateway{}, fmt.Errorf("the gateway secret in Vault at %s: %w (the gateway's Vault policy needs read, create and update on %s/data/%s: see deploy/vault/beamgate-gateway.hcl)",
			where, err, vs.Config().KVMount, vs.GatewaySecretPath())
	}
	ring := cookies.NewKeyring(secrets)
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); vs.WatchGatewaySecrets(wctx, ring, 0) }()
	// Before the cookie store closes (closers run in order, the store last).
	svc.closers = append([]func() error{func() error { stop(); <-done; return nil }}, svc.closers...)
	log.Info("gateway secret from vault", zap.String("path", where), zap.Int("version", secrets.Version))
	return cookies.Gateway{Keys: ring, Window: cfg.CookieWindow}, nil
}

// service is an assembled gateway: the SSH front door and the parts it
// was given, which the service owns and closes after the front door.
type service struct {
	srv         *gateway.Server
	alog        *audit.Log
	checkpoints atomic.Pointer[audit.Checkpointer] // kicked after a rotation
	// ops is the ops listener (nil: ops.listen is off); metrics are its
	// metrics (nil too then: their methods do nothing).
	ops *ops.Server
	// listening is set once the SSH listener is open (/readyz's starting).
	listening atomic.Bool
	metrics   *ops.Metrics
	// closers run in order once the front door has stopped: the relay
	// (ending sessions a drain left), then the audit log (after every
	// last record), then the ops listener, then the cookie store.
	closers []func() error
}

// assemble builds a gateway from a validated configuration: it loads or
// creates the host key and the gateway secret, opens the production cookie
// store and the audit log, and builds the relay and the front door.
func assemble(cfg *config.Config, log *zap.Logger, tweaks ...func(*gateway.Options)) (*service, error) {
	if log == nil {
		log = zap.NewNop()
	}
	// The production cookie store first: a configuration that cannot
	// start fails here, before anything is written.
	svc := &service{}
	if cfg.Ops.Listen != "" {
		svc.metrics = ops.NewMetrics(versionString()) // before Vault: it times Vault's requests
	}
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
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cookies.file %s does not exist: create it with one \"CLUSTER: COOKIE\" line per cluster, mode 0600 (nothing was written)", cfg.Cookies.File)
		}
		if err != nil {
			return nil, err
		}
		if err := checkFileCookies(fs, cfg); err != nil {
			return nil, err
		}
		store = fs
	case "vault":
		var err error
		vs, err = openVault(context.Background(), cfg, log, svc.metrics.ObserveVault)
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
	// The ops listener binds now (a busy port fails before anything is
	// written) and serves once the gateway is built. It closes after the
	// audit log, so the last scrape sees the drain, and before the cookie
	// store its probes ask.
	if cfg.Ops.Listen != "" {
		svc.ops = ops.New(cfg.Ops.Listen, svc.metrics, log.Named("ops"))
		if err := svc.ops.Listen(); err != nil {
			return fail(fmt.Errorf("ops.listen %s: %w", cfg.Ops.Listen, err))
		}
		svc.closers = append([]func() error{func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return svc.ops.Close(ctx)
		}}, svc.closers...)
	}
	// Then what beamgate creates on first start.
	for _, p := range []string{cfg.HostKey, cfg.GatewaySecretFile, cfg.Audit.Path} {
		if p == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fail(err)
		}
	}
	signer, err := gateway.LoadOrCreateHostKey(cfg.HostKey)
	if err != nil {
		return fail(err)
	}
	gw, err := gatewaySecret(cfg, vs, log, svc)
	if err != nil {
		return fail(err)
	}
	alog, err := openAuditLog(cfg, log, svc)
	if err != nil {
		return fail(err)
	}
	svc.alog = alog
	audClosers := []func() error{alog.Close}
	cp, err := startCheckpoints(cfg, alog, vs, log)
	if err != nil {
		alog.Close()
		return fail(err)
	}
	svc.checkpoints.Store(cp)
	// Closing order: the final checkpoint, the shipper, then the log.
	if stop, err := startShipping(cfg, log); err != nil {
		cp.Close()
		alog.Close()
		return fail(err)
	} else if stop != nil {
		audClosers = append([]func() error{stop}, audClosers...)
	}
	audClosers = append([]func() error{cp.Close}, audClosers...)
	// Recent keeps each engineer's own refusals (ssh bastion why); every
	// record still goes to the log first, through the metrics when the
	// ops listener is on.
	var sink audit.Sink = alog
	if svc.ops != nil {
		sink = ops.NewMetricsSink(alog, svc.metrics)
		svc.ops.AddCheck(ops.Check{Name: "audit", Err: alog.Err})
	}
	recent := gateway.NewRecent(sink, nil)
	rl := relay.New(relay.Config{Audit: recent, Cookies: store, Log: log.Named("relay"), Limits: relay.Limits{
		HandshakeTimeout: cfg.Limits.ForwardTimeout,
		MaxBuffered:      int(cfg.Limits.MaxBufferedPerSession),
		BufferBudget:     int64(cfg.Limits.BufferBudget),
	}})
	svc.metrics.SetRelayBytes(rl.Bytes)
	svc.metrics.SetBuffers(int64(cfg.Limits.BufferBudget), int64(cfg.Limits.MaxBufferedPerSession), rl.Buffered)
	svc.closers = append(append([]func() error{func() error { rl.Close(); return nil }}, audClosers...), svc.closers...)
	opts := gateway.Options{
		Config:     cfg,
		HostSigner: signer,
		Gateway:    gw,
		Audit:      recent,
		Recent:     recent,
		Relay:      rl,
		Cookies:    store, // the views try production cookies as the relay does
		Log:        log.Named("ssh"),
	}
	opts.Shells = cookies.FileDoc(cfg.BreakGlass.File)
	if vs != nil {
		opts.Shells = vs.Doc(cfg.BreakGlass.VaultPath)
		opts.Revocations = vs.Revocations()
		opts.SSHCA = vs.SSHCAPublicKey
		opts.RevocationStaleLimit = vs.Config().StaleLimit
	}
	for _, t := range tweaks {
		t(&opts)
	}
	if svc.ops != nil {
		if opts.Revocations != nil {
			opts.Revocations = svc.ops.TrackRevocations(opts.Revocations, opts.RevocationStaleLimit)
		}
		if vs != nil {
			svc.ops.WatchVault(vs, vaultStartTimeout)
		}
	}
	svc.srv, err = gateway.NewServer(opts)
	if err != nil {
		return fail(err)
	}
	if svc.ops != nil {
		// Not ready until the SSH listener is open: a load balancer must
		// not send engineers to a port nothing accepts on yet.
		svc.ops.AddCheck(ops.Check{Name: "starting", Err: func() error {
			if !svc.listening.Load() {
				return errors.New("the SSH listener is not open yet")
			}
			return nil
		}})
		if err := svc.ops.Start(); err != nil {
			svc.srv.Close()
			return fail(err)
		}
	}
	return svc, nil
}

// SetDraining makes the ops listener's /readyz fail (SIGTERM: the gateway
// is draining); Shutdown calls it too.
func (s *service) SetDraining() {
	if s.ops != nil {
		s.ops.SetDraining()
	}
}

// RotateAudit rotates the audit log now (SIGHUP); the next checkpoint
// follows at once.
func (s *service) RotateAudit() error { return s.alog.Rotate() }

// openAuditLog opens the audit log with the configured rotation and
// retention; a rotation kicks the checkpointer. The log's own lines
// (outages and recoveries, repairs made at open, rotations, retention) go
// to the operational logger.
func openAuditLog(cfg *config.Config, log *zap.Logger, svc *service) (*audit.Log, error) {
	a := cfg.Audit
	return audit.Open(a.Path, audit.Options{
		Logger:      log.Named("audit"),
		RotateSize:  int64(a.RotateSize),
		RotateDaily: a.RotateDailyOn(),
		Keep:        a.Keep,
		KeepAge:     a.KeepAge,
		OnRotate: func(uint64, string) {
			if cp := svc.checkpoints.Load(); cp != nil {
				cp.Kick()
			}
		},
	})
}

// startCheckpoints signs the log's head at the configured interval: with
// Vault Transit and a KV anchor on the Vault backend, with a local key and
// a file anchor beside it otherwise.
func startCheckpoints(cfg *config.Config, alog *audit.Log, vs *cookies.VaultStore, log *zap.Logger) (*audit.Checkpointer, error) {
	c := cfg.Audit.Checkpoint
	var (
		signer audit.Signer
		anchor audit.Anchor
	)
	if vs != nil {
		vc := vaultanchor.Config{TransitMount: c.TransitMount, Key: c.TransitKey, KVMount: vs.Config().KVMount, Path: c.KVPath}
		signer, anchor = vaultanchor.NewTransit(vs.Client(), vc), vaultanchor.NewKV(vs.Client(), vc)
	} else {
		key, err := audit.LoadOrCreateEd25519Key(c.KeyFile)
		if err != nil {
			return nil, err
		}
		signer, anchor = key, audit.FileAnchor{Dir: cfg.Audit.AnchorDir()}
	}
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Log: alog, Signer: signer, Anchor: anchor,
		Replica: cfg.Audit.Replica, Interval: c.Interval, Logger: log.Named("audit")})
	if err != nil {
		return nil, err
	}
	// A first checkpoint now: a signing key or anchor that does not work
	// is a start error naming it, not a warning every 10 s.
	ctx, cancel := context.WithTimeout(context.Background(), vaultStartTimeout)
	defer cancel()
	if err := cp.Checkpoint(ctx); err != nil {
		cp.Close()
		return nil, fmt.Errorf("%w (audit.checkpoint: with Vault, enable transit and create the key: vault write -f %s/keys/%s type=ed25519)", err, c.TransitMount, c.TransitKey)
	}
	return cp, nil
}

// startShipping starts the audit.ship shipper, if configured, and returns
// its stop function.
func startShipping(cfg *config.Config, log *zap.Logger) (func() error, error) {
	sc := cfg.Audit.Ship
	if sc == nil {
		return nil, nil
	}
	var dest audit.Destination
	switch sc.To {
	case config.ShipStdout:
		dest = audit.NewStdout(nil)
	default:
		d, err := audit.NewSyslog(sc.Network, sc.Address, audit.SyslogOptions{Facility: sc.FacilityCode(), MaxSize: sc.MaxMessageSize})
		if err != nil {
			return nil, err
		}
		dest = d
	}
	sh := &audit.Shipper{Path: cfg.Audit.Path, Dest: dest, StateFile: sc.StateFile, Log: log.Named("audit.ship")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sh.Run(ctx) }()
	return func() error { cancel(); <-done; return nil }, nil
}

// Close closes the front door and every connection, then the parts.
func (s *service) Close() error {
	return errors.Join(s.srv.Close(), s.closeParts())
}

// Shutdown stops accepting, waits for connections to end or ctx, then
// closes the parts.
func (s *service) Shutdown(ctx context.Context) error {
	s.SetDraining()
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
