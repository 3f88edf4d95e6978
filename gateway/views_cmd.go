package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/config"
	"beamgate/gateway/dist/client"
	"beamgate/gateway/dist/term"
	"beamgate/gateway/epmd"
	"beamgate/gateway/views"

	"github.com/gliderlabs/ssh"
	"go.uber.org/zap"
	gossh "golang.org/x/crypto/ssh"
)

// viewCommands are the session commands that run a text view of a node.
var viewCommands = []string{"top", "ets", "apps", "info", "stats", "binaries"}

func isViewCommand(name string) bool { return slices.Contains(viewCommands, name) }

// Rules the front door refuses a view command under, named in the
// refusal and in its audit record.
const (
	ruleViewUsage    = "view.usage"
	ruleViewNode     = "view.node_not_granted"
	ruleViewPTY      = "view.watch_needs_pty"
	ruleViewLimit    = "view.one_per_user_per_node"
	ruleViewDisabled = "view.unavailable"
)

// viewDialTimeout bounds reaching production (epmd and handshake) for a
// view.
const viewDialTimeout = 10 * time.Second

// runView runs one view command (args[0] is top, ets, ...; args[1] the
// node) for id, writing to ch until the view ends or run does. It returns
// the exit status.
func (s *Server) runView(ctx ssh.Context, run context.Context, id *Identity, args []string, ch gossh.Channel, pty bool) uint32 {
	cmdline := strings.Join(args, " ")
	var node *config.Node
	record := func(decision audit.Decision, rule, reason string) *audit.Record {
		r := s.record(ctx, id, audit.EventCommand, decision, reason)
		r.Op = truncate(cmdline, 128)
		r.Rule = rule
		if node != nil {
			r.Target, r.Cluster = node.Name, node.Cluster
		}
		return r
	}
	refuse := func(rule, msg string) uint32 {
		s.aud.Record(ctx, audit.After, record(audit.DecisionDeny, rule, msg))
		writeErr(ch, pty, fmt.Sprintf("beamgate: %s refused (rule %s): %s\n", args[0], rule, msg))
		return 1
	}

	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		return refuse(ruleViewUsage, fmt.Sprintf("usage: %s NODE [flags]; run help for the flags", args[0]))
	}
	reachable := s.cfg.Reachable(id.User)
	for _, n := range reachable {
		if n.Name == args[1] {
			node = n
		}
	}
	if node == nil {
		names := make([]string, len(reachable))
		for i, n := range reachable {
			names[i] = n.Name
		}
		list := "none"
		if len(names) > 0 {
			list = strings.Join(names, ", ")
		}
		return refuse(ruleViewNode, fmt.Sprintf("%q is not a node you may reach; your nodes: %s", truncate(args[1], 80), list))
	}
	flags := args[2:]
	watch := hasFlag(flags, "watch")
	if watch && !pty && !hasFlag(flags, "json") {
		return refuse(ruleViewPTY, "--watch redraws the screen and needs a terminal: run it with ssh -t (or add --json for one line per refresh)")
	}
	if s.opts.Cookies == nil {
		return refuse(ruleViewDisabled, "views are not configured on this gateway")
	}
	release, ok := s.views.Acquire(id.User, node.Name)
	if !ok {
		return refuse(ruleViewLimit, fmt.Sprintf("you already run a view on %s; one view runs per user per node", node.Name))
	}
	defer release()

	grant := s.cfg.Grants(id.User)[node.Cluster]
	if err := s.aud.Record(ctx, audit.Gate, record(audit.DecisionAllow, "", "")); err != nil {
		writeErr(ch, pty, auditUnavailable+"\n")
		return 1
	}
	conn := &viewConn{
		node:    node,
		name:    viewNodeName(s.opts.ViewHost),
		cookies: s.opts.Cookies,
	}
	defer conn.Close()
	caller := views.NewPolicedCaller(conn, views.PolicedConfig{
		Profile: grant.Profile, Mode: grant.Mode, Known: s.opts.Relay.KnownAtoms(node.Name),
		Engineer: conn.name, Target: node.Name,
		Audit: s.opts.Audit, User: id.User, Cluster: node.Cluster, Session: sessionOf(ctx),
	})

	run, cancel := context.WithCancel(run)
	defer cancel()
	go readKeys(ch, pty, cancel)
	var out io.Writer = ch
	if pty && !(watch && !hasFlag(flags, "json")) { // Watch draws with CRLF itself
		out = &crlfWriter{w: ch}
	}
	s.log.Info("view", zap.String("user", id.User), zap.String("node", node.Name), zap.String("command", truncate(cmdline, 128)))
	err := views.Run(run, caller, append([]string{args[0]}, flags...), out)
	if err == nil || run.Err() != nil {
		return 0
	}
	writeErr(ch, pty, "beamgate: "+conn.scrub(err.Error())+"\n")
	return 1
}

// hasFlag reports whether args set the flag name (-name, --name, with or
// without =value), as the flag package reads them.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// writeErr writes msg to the channel's stderr, with CRLF line ends in a
// PTY.
func writeErr(ch gossh.Channel, pty bool, msg string) {
	if pty {
		msg = strings.ReplaceAll(msg, "\n", "\r\n")
	}
	io.WriteString(ch.Stderr(), msg)
}

// readKeys reads (and discards) what the engineer types. In a PTY, where
// ssh -t passes Ctrl-C as a byte, Ctrl-C, Ctrl-D and q stop the view.
// It returns when the channel's input ends.
func readKeys(ch gossh.Channel, pty bool, stop func()) {
	buf := make([]byte, 256)
	for {
		n, err := ch.Read(buf)
		if pty && bytes.ContainsAny(buf[:n], "\x03\x04q") {
			stop()
			return
		}
		if err != nil {
			return
		}
	}
}

// crlfWriter turns "\n" into "\r\n" for a PTY, whose far end may be raw.
type crlfWriter struct{ w io.Writer }

func (c *crlfWriter) Write(p []byte) (int, error) {
	if _, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// defaultViewHost is the host part of the views' node names: this
// machine's short host name, or "beamgate".
func defaultViewHost() string {
	h, err := os.Hostname()
	if err != nil {
		return "beamgate"
	}
	h, _, _ = strings.Cut(h, ".")
	if !config.ValidHost(h) {
		return "beamgate"
	}
	return h
}

// viewNodeName is a fresh hidden-node name for one view.
func viewNodeName(host string) string {
	var b [6]byte
	rand.Read(b[:])
	return "beamgate_view_" + hex.EncodeToString(b[:]) + "@" + host
}

// viewConn is the views' connection to production: the hidden-node
// client, dialled on the first call a view makes (so usage errors and
// policy refusals never reach production) and redialled once if it
// breaks. Errors it returns never contain the production cookie. mu
// guards conn, dialErr, used and closed, and is held across a dial so
// concurrent calls of one view share it.
type viewConn struct {
	node    *config.Node
	name    string
	cookies cookies.Source

	mu      sync.Mutex
	conn    *client.Conn
	dialErr error
	used    []string // cookies tried, scrubbed from error text
	closed  bool
}

// Call implements views.Caller.
func (v *viewConn) Call(ctx context.Context, module, function term.Atom, args []term.Term) (term.Term, error) {
	c, err := v.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.Call(ctx, module, function, args)
}

func (v *viewConn) get(ctx context.Context) (*client.Conn, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.closed:
		return nil, client.ErrClosed
	case v.conn != nil && v.conn.Err() == nil:
		return v.conn, nil
	case v.dialErr != nil:
		return nil, v.dialErr
	}
	redial := v.conn != nil
	if redial {
		v.conn.Close()
		v.conn = nil
	}
	c, err := v.dial(ctx)
	if err != nil {
		if redial || ctx.Err() == nil {
			// Do not make every call of a batch wait for the same failure.
			v.dialErr = err
		}
		return nil, err
	}
	v.conn = c
	return c, nil
}

// dial (called with v.mu held) looks production up at its epmd (at the
// node's dial address, as the relay does) and connects as a hidden node,
// trying the production cookies in the order of cookies.Attempts.
func (v *viewConn) dial(ctx context.Context) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, viewDialTimeout)
	defer cancel()
	n := v.node
	port, err := epmd.LookupPort(ctx, n.EpmdAddr(), n.Alive)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: its epmd at %s: %v", n.Name, n.EpmdAddr(), err)
	}
	host, _, err := net.SplitHostPort(n.EpmdAddr())
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %v", n.Name, err)
	}
	// The same cookies, in the same order, as the relay tries: during a
	// rotation a node the rotation has not reached yet still runs the
	// previous cookie.
	attempts := cookies.NewAttempts(v.cookies, n.Cluster)
	var last error
	for {
		cookie, err := attempts.Next(ctx)
		if err != nil {
			if last == nil {
				return nil, fmt.Errorf("cannot reach %s: no production cookie for cluster %s", n.Name, n.Cluster)
			}
			break
		}
		if !slices.Contains(v.used, cookie) {
			v.used = append(v.used, cookie)
		}
		c, err := client.Dial(ctx, client.Config{
			Node: v.name, Target: n.Name, Cookie: cookie,
			DistAddr: net.JoinHostPort(host, strconv.Itoa(port)),
		})
		if err == nil {
			return c, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.New(scrubCookies(fmt.Sprintf("cannot reach %s: %v", n.Name, last), v.used))
}

// scrub removes every production cookie this connection used from s.
func (v *viewConn) scrub(s string) string {
	v.mu.Lock()
	used := slices.Clone(v.used)
	v.mu.Unlock()
	return scrubCookies(s, used)
}

func scrubCookies(s string, cookies []string) string {
	for _, c := range cookies {
		if c != "" {
			s = strings.ReplaceAll(s, c, "[cookie]")
		}
	}
	return s
}

// Close closes the connection to production.
func (v *viewConn) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	if v.conn != nil {
		v.conn.Close()
	}
	return nil
}
