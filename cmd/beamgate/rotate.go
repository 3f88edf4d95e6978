package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/config"
	"beamgate/gateway/rotate"

	"go.uber.org/zap"
)

// cookieUsage lists the cookie subcommands.
const cookieUsage = `usage: beamgate cookie rotate --config FILE --cluster NAME
       beamgate cookie rotate-gateway-secret --config FILE
`

// cookieCmd runs `beamgate cookie rotate` and `beamgate cookie
// rotate-gateway-secret`.
func cookieCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "rotate-gateway-secret" {
		return rotateGatewaySecretCmd(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprint(stderr, cookieUsage)
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errors.New("unknown cookie subcommand")
	}
	fs := flag.NewFlagSet("cookie rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML) with cookies.backend: vault")
	cluster := fs.String("cluster", "", "the cluster whose production cookie to rotate")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *configPath == "" || *cluster == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("--config FILE and --cluster NAME are required")
	}
	env, err := openOps(ctx, *configPath, stderr)
	if err != nil {
		return err
	}
	defer env.close()
	return env.rotate(ctx, *cluster, stdout)
}

// opsEnv is what the operator commands (cookie rotate, offboard) share:
// the configuration, a Vault login and an audit sink.
type opsEnv struct {
	cfg       *config.Config
	vault     *cookies.VaultStore
	alog      *audit.Log   // closed by close
	aud       audit.Writer // how the commands write to alog
	log       *zap.Logger
	auditPath string
	actor     string
}

func openOps(ctx context.Context, configPath string, stderr io.Writer) (*opsEnv, error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	log := cliLogger(stderr)
	vs, err := openVault(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	alog, path, err := openCLIAudit(cfg.Audit.Path, stderr)
	if err != nil {
		vs.Close()
		return nil, err
	}
	return &opsEnv{cfg: cfg, vault: vs, alog: alog, aud: audit.Writer{Sink: alog, Log: log}, log: log,
		auditPath: path, actor: osActor()}, nil
}

func (e *opsEnv) close() {
	e.alog.Close()
	e.vault.Close()
}

// osActor names the OS user running the command, for the audit log.
func osActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}

// clientNode is the hidden node name of a rotation:
// beamgate_rotate_<hex>@<hostname>.
func clientNode() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	var b [4]byte
	rand.Read(b[:])
	return "beamgate_rotate_" + hex.EncodeToString(b[:]) + "@" + host
}

// rotate rotates cluster's cookie on its configured nodes and prints the
// report. It fails when any node failed.
func (e *opsEnv) rotate(ctx context.Context, cluster string, stdout io.Writer) error {
	cl, ok := e.cfg.Clusters[cluster]
	if !ok {
		names := make([]string, 0, len(e.cfg.Clusters))
		for n := range e.cfg.Clusters {
			names = append(names, n)
		}
		return fmt.Errorf("unknown cluster %q (configured: %s)", cluster, strings.Join(names, ", "))
	}
	nodes := make([]rotate.Node, 0, len(cl.Nodes))
	for _, n := range cl.Nodes {
		nodes = append(nodes, rotate.Node{Name: n.Name, Dial: n.Dial})
	}
	rep, err := rotate.Run(ctx, rotate.Config{
		Store: e.vault, Cluster: cluster, Nodes: nodes,
		ClientNode: clientNode(), Actor: e.actor, Audit: e.alog, Log: e.log,
	})
	printRotation(stdout, cluster, rep, err)
	if err != nil {
		return fmt.Errorf("cluster %s: %w (run the same command again to finish the rotation)", cluster, err)
	}
	for _, n := range rep.Nodes {
		if n.Outcome == rotate.NodeFailed || !n.Verified {
			return fmt.Errorf("cluster %s: node %s did not take the new cookie (run the same command again to finish the rotation)", cluster, n.Name)
		}
	}
	return nil
}

// printRotation writes a per-node table. Reports never contain cookies.
func printRotation(w io.Writer, cluster string, rep *rotate.Report, err error) {
	if rep == nil {
		fmt.Fprintf(w, "cluster %s: rotation did not start: %v\n", cluster, err)
		return
	}
	resumed := ""
	if rep.Resumed {
		resumed = " (finished an interrupted rotation)"
	}
	fmt.Fprintf(w, "cluster %s: cookie version %d -> %d%s in %s\n", cluster, rep.FromVersion, rep.ToVersion, resumed,
		rep.Finished.Sub(rep.Started).Round(1e6))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tOUTCOME\tVERIFIED\tERROR")
	for _, n := range rep.Nodes {
		v := "no"
		if n.Verified {
			v = "yes"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", n.Name, n.Outcome, v, dash(n.Err))
	}
	tw.Flush()
	for _, u := range rep.Unlisted {
		fmt.Fprintf(w, "  unlisted: %s answers epmd on a node host but is not configured; it keeps the old cookie\n", u)
	}
	for _, wmsg := range rep.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", wmsg)
	}
	if err != nil {
		fmt.Fprintf(w, "  error: %v\n", err)
	}
}

// rotateGatewaySecretCmd runs `beamgate cookie rotate-gateway-secret`: a
// new gateway secret in Vault. Every engineer's gateway cookie changes;
// the old cookies stay accepted for one cookie_window, on every replica
// (each re-reads the secret within seconds). Live sessions go on.
func rotateGatewaySecretCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cookie rotate-gateway-secret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML) with cookies.backend: vault")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("--config FILE is required")
	}
	env, err := openOps(ctx, *configPath, stderr)
	if err != nil {
		return err
	}
	defer env.close()
	now := time.Now()
	where := env.cfg.Cookies.Vault.KVMount + "/" + env.vault.GatewaySecretPath()
	sec, err := env.vault.RotateGatewaySecret(ctx, env.cfg.CookieWindow, now)
	rec := &audit.Record{Event: audit.EventCookieRotate, User: env.actor, Decision: audit.DecisionAllow,
		Detail: map[string]string{"step": "gateway_secret", "path": where}}
	if err != nil {
		rec.Decision, rec.Reason = audit.DecisionDeny, err.Error()
		env.aud.Record(ctx, audit.After, rec)
		return err
	}
	rec.Detail["to_version"] = strconv.Itoa(sec.Version)
	rec.Detail["previous_until"] = sec.PreviousUntil.UTC().Format(time.RFC3339)
	if err := env.aud.Record(ctx, audit.Gate, rec); err != nil {
		return fmt.Errorf("the gateway secret was rotated (version %d) but the audit log refused the record: %w", sec.Version, err)
	}
	fmt.Fprintf(stdout, "rotated the gateway secret at %s (version %d).\n"+
		"Every engineer's gateway cookie changed; the old cookies are accepted until %s (one cookie_window).\n"+
		"Running gateways pick the new secret up within %s; live sessions go on.\n",
		where, sec.Version, sec.PreviousUntil.UTC().Format(time.RFC3339), cookies.DefaultSecretWatchInterval)
	return nil
}
