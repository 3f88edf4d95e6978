package main

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"beamgate/cookies"
	"beamgate/gateway/epmd"

	"go.uber.org/zap"
)

// demoShopSource is the demo nodes' workload: an application with a
// supervision tree, a growing mailbox, a memory hog, ETS tables of several
// sizes and a child that crashes now and then.
//
//go:embed demo_shop.erl
var demoShopSource []byte

// demoShopStart compiles and starts demo_shop on a demo node.
const demoShopStart = `{ok, demo_shop, Bin} = compile:file("demo_shop.erl", [binary]), ` +
	`{module, demo_shop} = code:load_binary(demo_shop, "demo_shop.erl", Bin), {ok, _} = demo_shop:start().`

// demoNodes are the demo cluster's nodes: two loopback hosts, and the
// short name demo on both, as production clusters usually have.
var demoNodes = []struct{ name, alive, host, ip string }{
	{"demo@demo-prod-1", "demo", "demo-prod-1", "127.0.0.2"},
	{"demo@demo-prod-2", "demo", "demo-prod-2", "127.0.0.3"},
	{"worker@demo-prod-2", "worker", "demo-prod-2", "127.0.0.3"},
}

// demoSet is the local demo cluster: one private epmd per host
// address and the nodes.
type demoSet struct {
	epmdPorts map[string]int // by host address
	cmds      []*exec.Cmd    // nodes first, then epmds: stopped in this order
	log       *zap.Logger
}

// describe lists the nodes and where they run.
func (d *demoSet) describe() string {
	parts := make([]string, len(demoNodes))
	for i, n := range demoNodes {
		parts[i] = fmt.Sprintf("%s on %s", n.name, n.ip)
	}
	return strings.Join(parts, ", ")
}

// startDemo starts a private epmd on each demo host address and the demo
// nodes bound to their addresses, sharing a random production cookie,
// which is written to the state's cookie store and to the nodes' own
// ~/.erlang.cookie (never on a command line).
func startDemo(ctx context.Context, state string, log *zap.Logger) (*demoSet, error) {
	d := &demoSet{log: log, epmdPorts: map[string]int{}}
	var epmds []*exec.Cmd
	for _, n := range demoNodes {
		if _, ok := d.epmdPorts[n.ip]; ok {
			continue
		}
		port, err := freePort(n.ip)
		if err != nil {
			d.stop()
			return nil, fmt.Errorf("no free port on %s (Linux routes 127.0.0.0/8; on macOS run sudo ifconfig lo0 alias %s up): %w", n.ip, n.ip, err)
		}
		d.epmdPorts[n.ip] = port
		c := exec.Command("epmd", "-port", strconv.Itoa(port))
		c.Env = append(os.Environ(), "ERL_EPMD_ADDRESS="+n.ip)
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			d.stop()
			return nil, err
		}
		epmds = append(epmds, c)
		d.cmds = append(d.cmds, c)
	}

	cookie := randomCookie()
	if err := cookies.WriteFile(filepath.Join(state, "cookies.yaml"), map[string]string{demoCluster: cookie}); err != nil {
		d.stop()
		return nil, err
	}
	home := filepath.Join(state, "demo-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		d.stop()
		return nil, err
	}
	cookieFile := filepath.Join(home, ".erlang.cookie")
	os.Remove(cookieFile)
	if err := os.WriteFile(cookieFile, []byte(cookie), 0o400); err != nil {
		d.stop()
		return nil, err
	}
	// The demo workload (demo_shop.erl): compiled and started by each node.
	if err := os.WriteFile(filepath.Join(home, "demo_shop.erl"), demoShopSource, 0o600); err != nil {
		d.stop()
		return nil, err
	}
	var nodes []*exec.Cmd
	for _, n := range demoNodes {
		c := exec.Command("erl", "-noshell", "-sname", n.name,
			"-kernel", "inet_dist_use_interface", "{"+strings.ReplaceAll(n.ip, ".", ",")+"}",
			"-eval", demoShopStart)
		c.Env = append(os.Environ(), "HOME="+home, "ERL_EPMD_PORT="+strconv.Itoa(d.epmdPorts[n.ip]))
		c.Dir = home
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			d.stop()
			return nil, err
		}
		nodes = append(nodes, c)
	}
	d.cmds = append(nodes, epmds...)
	// Wait until every node registered with its epmd.
	deadline := time.Now().Add(demoStartWait)
	for _, n := range demoNodes {
		addr := net.JoinHostPort(n.ip, strconv.Itoa(d.epmdPorts[n.ip]))
		for {
			lctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := epmd.LookupPort(lctx, addr, n.alive)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				d.stop()
				return nil, fmt.Errorf("%s did not register with epmd on %s: %v", n.name, addr, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return d, nil
}

// stop ends the demo nodes, then their epmds: SIGTERM to each child's
// process group, then SIGKILL after childStopWait.
func (d *demoSet) stop() {
	for _, c := range d.cmds {
		if c == nil || c.Process == nil {
			continue
		}
		pgid := c.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(childStopWait):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
	}
}
