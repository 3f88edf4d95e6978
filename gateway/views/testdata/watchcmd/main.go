// Command watchcmd runs one beamgate view against a real production node
// through the hidden-node client and the readonly policy, for the tmux
// test of --watch. The cookie comes from WATCHCMD_COOKIE.
//
//	watchcmd -node beamgate_view@127.0.0.6 -target prod@127.0.0.2 -epmd 127.0.0.1:4369 -audit /tmp/a.log top --watch 1s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"beamgate/audit"
	"beamgate/gateway/dist/client"
	"beamgate/gateway/views"
	"beamgate/policy"
)

func main() {
	node := flag.String("node", "", "our hidden node name")
	target := flag.String("target", "", "production node")
	epmd := flag.String("epmd", "", "production's epmd host:port")
	auditPath := flag.String("audit", "", "audit log path")
	limit := flag.Duration("for", time.Minute, "stop after this long")
	flag.Parse()
	if err := run(*node, *target, *epmd, *auditPath, *limit, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "watchcmd:", err)
		os.Exit(1)
	}
}

func run(node, target, epmd, auditPath string, limit time.Duration, args []string) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, limit)
	defer cancelT()
	conn, err := client.Dial(ctx, client.Config{Node: node, Target: target, EpmdAddr: epmd,
		Cookie: os.Getenv("WATCHCMD_COOKIE"), Creation: 3})
	if err != nil {
		return err
	}
	defer conn.Close()
	log, err := audit.Open(auditPath, audit.Options{})
	if err != nil {
		return err
	}
	defer log.Close()
	prof, err := policy.Load("readonly")
	if err != nil {
		return err
	}
	c := views.NewPolicedCaller(conn, views.PolicedConfig{Profile: prof, Engineer: node, EngineerCreation: 3,
		Target: target, Audit: log, User: "tmux"})
	return views.Run(ctx, c, args, os.Stdout)
}
