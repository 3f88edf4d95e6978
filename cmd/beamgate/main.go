// Command beamgate runs the beamgate SSH gateway (`beamgate serve` with a
// configuration file, `beamgate dev` for a self-contained local setup with
// a demo production node) and the operator's commands: `cookie rotate`,
// `offboard` (both against Vault) and `audit` (query, verify, tail).
package main

import (
	"beamgate/gateway/config"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// version is set at link time (-ldflags "-X main.version=..."); without
// it, versionString reads the module version and VCS stamp Go records.
var version = ""

// versionString is version, else the build's module version and VCS
// revision (go build and go install stamp them; go run does not).
func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v + ", no VCS stamp (built with go run or -buildvcs=false)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += "-dirty"
	}
	return fmt.Sprintf("%s commit %s (%s)", v, rev, at)
}

const usage = `usage: beamgate COMMAND [flags]

commands:
  serve --config FILE             run the gateway with a configuration file
  dev [--state DIR] [--listen A]  run a local gateway (and a demo node when erl is installed)
  cookie rotate --config FILE --cluster NAME
                                  give a cluster a new production cookie in Vault and on every node
  cookie rotate-gateway-secret --config FILE
                                  new gateway-cookie secret in Vault (old cookies work one cookie_window)
  offboard USER --reason TEXT --config FILE
                                  revoke USER everywhere (live sessions end) and rotate their clusters' cookies
  audit [verify | tail [-f] [-n N] [--from-seq N]] [--config FILE | --file PATH] [filters] [--json]
                                  query, verify or follow the audit log (beamgate audit help)
  audit replay SESSION [--follow] [--config FILE | --file PATH]
                                  a break-glass shell's transcript
  version                         print the version (module version, commit)
  help [COMMAND]                  this list, or COMMAND's flags (as COMMAND --help)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs one command until it ends or ctx is cancelled (SIGINT/SIGTERM).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCmd(ctx, args[1:], stderr)
	case "dev":
		err = devCmd(ctx, args[1:], stdout, stderr)
	case "cookie":
		err = cookieCmd(ctx, args[1:], stdout, stderr)
	case "offboard":
		err = offboardCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		err = auditCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "beamgate %s (%s)\n", versionString(), runtime.Version())
		return 0
	case "help", "-h", "--help":
		if len(args) > 1 && args[1] != "help" && !strings.HasPrefix(args[1], "-") {
			// help COMMAND is COMMAND --help.
			return run(ctx, append(append([]string{}, args[1:]...), "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "beamgate: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "beamgate %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// newLogger is the operational logger: zap's production config, JSON to
// stderr. Cookies are never logged.
func newLogger() (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	return cfg.Build()
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until shutdown (for `go tool pprof`)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if *configPath == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("--config FILE is required")
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	log, err := newLogger()
	if err != nil {
		return err
	}
	defer log.Sync()
	srv, err := assemble(cfg, log)
	if err != nil {
		return err
	}
	// SIGHUP re-reads the configuration (live sessions still allowed go
	// on) and rotates the audit log (logrotate's postrotate, or by hand);
	// the new file continues the chain.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	// systemd (Type=notify): ready once listening; RELOADING/READY around
	// a reload; STOPPING on SIGTERM; the watchdog while serving. All
	// no-ops without NOTIFY_SOCKET.
	_ = sdNotify("READY=1\nSTATUS=serving on " + ln.Addr().String())
	if iv := sdWatchdogInterval(); iv > 0 {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			t := time.NewTicker(iv)
			defer t.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-t.C:
					_ = sdNotify("WATCHDOG=1")
				}
			}
		}()
	}
	reload := func() error {
		_ = sdNotify(sdReloading())
		err := reloadConfig(ctx, srv, *configPath, log)
		srv.reloaded(err == nil)
		_ = sdNotify("READY=1")
		return err
	}
	return serveUntil(ctx, srv, log, ln, hup, reload)
}

// serveUntil runs srv on ln (nil: its configured listen address) until
// ctx ends, then shuts it down gracefully. Each value on rotate (nil:
// never) rotates the audit log.
func serveUntil(ctx context.Context, srv *service, log *zap.Logger, ln net.Listener, rotate <-chan os.Signal, reload func() error) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", srv.srv.Config().Listen); err != nil {
			srv.Close()
			return fmt.Errorf("listen %s: %w", srv.srv.Config().Listen, err)
		}
	}
	errc := make(chan error, 1)
	srv.listening.Store(true)
	go func() { errc <- srv.srv.Serve(ln) }()
wait:
	for {
		select {
		case err := <-errc:
			srv.Close()
			return err
		case <-rotate:
			// SIGHUP (systemctl reload, logrotate's postrotate): re-read
			// the configuration, then rotate the audit log.
			if reload != nil {
				_ = reload()
			}
			if err := srv.RotateAudit(); err != nil {
				log.Error("audit log rotation on SIGHUP failed", zap.Error(err))
			} else {
				log.Info("audit log rotated on SIGHUP")
			}
		case <-ctx.Done():
			break wait
		}
	}
	// Drain: new connections are refused at once; live sessions get
	// shutdown_grace, then are cut (their session_end records say so).
	grace := srv.srv.Config().ShutdownGrace
	_ = sdNotify("STOPPING=1")
	srv.SetDraining()
	log.Info("shutting down", zap.Duration("grace", grace))
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
