package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"beamgate/cookies"
	"beamgate/gateway"
	"beamgate/gateway/config"

	gossh "golang.org/x/crypto/ssh"
)

// The demo cluster beamgate dev starts when erl is installed (demo.go).
const (
	demoCluster     = "demo"
	demoGatewayPort = 4370
	demoStartWait   = 30 * time.Second
	childStopWait   = 5 * time.Second
)

func devCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", defaultStateDir(), "state directory (host key, cookies, audit log, generated key)")
	listen := fs.String("listen", "127.0.0.1:2222", "SSH listen address")
	gatewayPort := fs.Int("gateway-port", demoGatewayPort, "the first demo node's gateway port (the local port engineers forward); node N gets PORT+N")
	epmdPort := fs.Int("engineer-epmd-port", config.DefaultEngineerEpmdPort, "the local epmd port the recipe has engineers forward (ERL_EPMD_PORT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errors.New("unexpected arguments")
	}
	if err := os.MkdirAll(*state, 0o700); err != nil {
		return err
	}
	// Bind before anything is started or printed: a busy port is an error
	// naming the fix, not a recipe for a gateway that is not there.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (%v): another beamgate dev may be running; pick a free address with --listen 127.0.0.1:PORT", *listen, err)
	}
	defer ln.Close()
	log, err := newLogger()
	if err != nil {
		return err
	}
	defer log.Sync()

	keys, generated, err := devUserKeys(*state)
	if err != nil {
		return err
	}

	// The demo production cluster, when erl is installed.
	var demo *demoSet
	if _, err := exec.LookPath("erl"); err == nil {
		if _, err := exec.LookPath("epmd"); err == nil {
			demo, err = startDemo(ctx, *state, log)
			if err != nil {
				return fmt.Errorf("demo cluster: %w", err)
			}
			defer demo.stop()
		}
	}
	if demo == nil {
		fmt.Fprintln(stderr, "beamgate dev: erl not found; running without demo production nodes")
	}

	cfgPath := filepath.Join(*state, "beamgate.yaml")
	if err := writeDevConfig(cfgPath, *listen, *gatewayPort, *epmdPort, keys, demo); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	srv, err := assemble(cfg, log, func(o *gateway.Options) { o.RecipeIdentity = generated })
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(*listen)
	fmt.Fprintf(stdout, "beamgate dev: listening on %s, state in %s (config %s)\n", *listen, *state, cfgPath)
	identity := ""
	if generated != "" {
		fmt.Fprintf(stdout, "beamgate dev: no ~/.ssh/*.pub found; generated a key for user dev: %s\n", generated)
		identity = " -i " + generated
	}
	if demo != nil {
		fmt.Fprintf(stdout, "beamgate dev: demo cluster %s: %s (production cookie kept in %s)\n",
			demoCluster, demo.describe(), filepath.Join(*state, "cookies.yaml"))
		fmt.Fprintf(stdout, "\nTo see your recipe to observe it:\n\n  ssh%s -p %s dev@127.0.0.1\n\n", identity, port)
		fmt.Fprintf(stdout, "(The recipe maps the demo hosts to loopback addresses through ERL_INETRC; nothing to install on Linux.)\n")
	} else {
		fmt.Fprintf(stdout, "\nLog in: ssh%s -p %s dev@127.0.0.1\n", identity, port)
	}
	// dev runs in a terminal: closing it (SIGHUP) stops the gateway, as
	// Ctrl-C does, rather than rotating its audit log and running on.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stop()
	return serveUntil(ctx, srv, log, ln, nil, nil)
}

func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "beamgate", "dev")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "beamgate", "dev")
	}
	return "beamgate-dev"
}

// devUserKeys returns the invoking user's ~/.ssh/*.pub keys, or a key
// generated in state (returning its private key path).
func devUserKeys(state string) (keys []string, generated string, err error) {
	if home, err := os.UserHomeDir(); err == nil {
		paths, _ := filepath.Glob(filepath.Join(home, ".ssh", "*.pub"))
		for _, p := range paths {
			if strings.HasSuffix(p, "-cert.pub") {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			k, comment, _, _, err := gossh.ParseAuthorizedKey(b)
			if err != nil {
				continue
			}
			if _, isCert := k.(*gossh.Certificate); isCert {
				continue
			}
			keys = append(keys, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k)))+" "+comment)
		}
	}
	if len(keys) > 0 {
		return keys, "", nil
	}
	path := filepath.Join(state, "dev_ed25519")
	if b, err := os.ReadFile(path + ".pub"); err == nil {
		if _, err := os.Stat(path); err == nil {
			return []string{strings.TrimSpace(string(b))}, path, nil
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	block, err := gossh.MarshalPrivateKey(priv, "beamgate dev")
	if err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, "", err
	}
	sp, err := gossh.NewPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sp))) + " beamgate-dev"
	if err := os.WriteFile(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		return nil, "", err
	}
	return []string{line}, path, nil
}

// writeDevConfig writes the dev configuration. Without a demo node the
// cluster points at a node nobody runs, so the banner shows it unreachable.
func writeDevConfig(path, listen string, gatewayPort, epmdPort int, keys []string, demo *demoSet) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by beamgate dev on every start.\n")
	fmt.Fprintf(&b, "listen: %q\nhost_key: ./ssh_host_ed25519_key\ngateway_secret_file: ./gateway_secret\n", listen)
	fmt.Fprintf(&b, "engineer_epmd_port: %d\n", epmdPort)
	fmt.Fprintf(&b, "shutdown_grace: 2s # Ctrl-C ends dev quickly\n")
	fmt.Fprintf(&b, "audit:\n  path: ./audit.jsonl\ncookies:\n  backend: file\n  file: ./cookies.yaml\n")
	fmt.Fprintf(&b, "clusters:\n  %s:\n    nodes:\n", demoCluster)
	for i, n := range demoNodes {
		// Without a demo cluster the nodes point at an epmd nobody runs,
		// so the banner shows them unreachable.
		dial := n.ip + ":4369"
		if demo != nil {
			dial = net.JoinHostPort(n.ip, strconv.Itoa(demo.epmdPorts[n.ip]))
		}
		fmt.Fprintf(&b, "      - name: %s\n        dial: %q\n        gateway_port: %d\n", n.name, dial, gatewayPort+i)
	}
	fmt.Fprintf(&b, "users:\n  dev:\n    keys:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "      - %q\n", k)
	}
	fmt.Fprintf(&b, "    roles: [observer]\nroles:\n  observer:\n    clusters: [%s]\n    policy: readonly\n    mode: enforce\n", demoCluster)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return err
	}
	// The cookie store must exist even without a demo node.
	cookiePath := filepath.Join(filepath.Dir(path), "cookies.yaml")
	if demo == nil {
		if _, err := os.Stat(cookiePath); errors.Is(err, os.ErrNotExist) {
			return cookies.WriteFile(cookiePath, map[string]string{demoCluster: randomCookie()})
		}
	}
	return nil
}

func randomCookie() string {
	b := make([]byte, 20)
	rand.Read(b)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
