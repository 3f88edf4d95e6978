package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
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
	ruleViewLimit    = "view.per_user_per_node"
	ruleViewDisabled = "view.unavailable"
)

// viewDialTimeout bounds reaching production (epmd and handshake) for a
// view.
const viewDialTimeout = 10 * time.Second

// runView runs one view command (args[0] is top, ets, ...; args[1] the
// node) for id, writing to ch until the view ends or run does. It returns
// the exit status.
func (s *Server) runView(ctx ssh.Context, run context.Context, id *Identity, args []string, ch gossh.Channel, pty bool) uint32 {
	v := &viewCommand{s: s, ctx: ctx, id: id, args: args, ch: ch, pty: pty}
	record, refuse := v.record, v.refuse
	cmdline := strings.Join(args, " ")
	var node *config.Node

	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		return refuse(ruleViewUsage, fmt.Sprintf("usage: %s NODE|CLUSTER [flags]; run help for the flags", args[0]))
	}
	reachable := s.conf().ReachableFor(id.Roles())
	for _, n := range reachable {
		if n.Name == args[1] {
			node = n
		}
	}
	if node == nil {
		if _, ok := s.conf().GrantsFor(id.Roles())[args[1]]; ok {
			v.cluster = args[1]
			return s.runClusterView(v, run)
		}
		names := make([]string, len(reachable))
		for i, n := range reachable {
			names[i] = n.Name
		}
		list := "none"
		if len(names) > 0 {
			list = strings.Join(names, ", ")
		}
		clusters := strings.Join(slices.Sorted(maps.Keys(s.conf().GrantsFor(id.Roles()))), ", ")
		if clusters == "" {
			clusters = "none"
		}
		return refuse(ruleViewNode, fmt.Sprintf("%q is not a node or cluster you may reach; your nodes: %s; your clusters: %s", truncate(args[1], 80), list, clusters))
	}
	v.node = node
	flags := args[2:]
	if status, refused := v.refuseUnrunnable(flags); refused {
		return status
	}
	release, ok := s.views.Acquire(id.User, node.Name)
	if !ok {
		return refuse(ruleViewLimit, fmt.Sprintf("you already run %d views on %s (limits.views_per_node); stop one first", s.views.Max(), node.Name))
	}
	defer release()

	grant := s.conf().GrantsFor(id.Roles())[node.Cluster]
	if err := s.aud.Record(ctx, audit.Gate, record(audit.DecisionAllow, "", "")); err != nil {
		writeErr(ch, pty, auditUnavailable+"\n")
		return 1
	}
	conn, caller := s.viewCaller(ctx, id, node, grant)
	defer conn.Close()

	run, cancel := context.WithCancel(run)
	defer cancel()
	go readKeys(ch, pty, cancel)
	out := viewOut(ch, pty, flags)
	s.log.Info("view", zap.String("user", id.User), zap.String("node", node.Name), zap.String("command", truncate(cmdline, 128)))
	err := views.Run(run, caller, append([]string{args[0]}, flags...), out)
	if err == nil || run.Err() != nil {
		return 0
	}
	writeErr(ch, pty, "beamgate: "+conn.scrub(err.Error())+"\n")
	return 1
}

// viewCaller connects a view to node: the hidden-node client behind the
// engineer's policy and the audit log.
func (s *Server) viewCaller(ctx ssh.Context, id *Identity, node *config.Node, grant config.Grant) (*viewConn, *views.PolicedCaller) {
	conn := &viewConn{
		node:    node,
		name:    viewNodeName(s.opts.ViewHost),
		cookies: s.opts.Cookies,
	}
	return conn, views.NewPolicedCaller(conn, views.PolicedConfig{
		Profile: grant.Profile, Mode: grant.Mode, Known: s.opts.Relay.KnownAtoms(node.Name),
		Engineer: conn.name, Target: node.Name,
		Audit: s.opts.Audit, User: id.User, Cluster: node.Cluster, Session: sessionOf(ctx),
	})
}

// viewOut is where a view writes: the channel, with CRLF line ends in a
// PTY (a text --watch draws with CRLF itself).
func viewOut(ch gossh.Channel, pty bool, flags []string) io.Writer {
	if pty && !(hasFlag(flags, "watch") && !hasFlag(flags, "json")) {
		return &crlfWriter{w: ch}
	}
	return ch
}

// runClusterView runs a view on every node of a cluster (args[1]) id
// may reach, at most limits.cluster_view_parallel nodes at once, and
// writes one merged result with a NODE column. Each node's calls are
// policed and audited as a single-node view's are; a node that is down
// or times out is reported and the others are still shown (exit status
// 2 when some failed, 1 when all did).
func (s *Server) runClusterView(v *viewCommand, run context.Context) uint32 {
	ctx, id, args, ch, pty, cluster := v.ctx, v.id, v.args, v.ch, v.pty, v.cluster
	cmdline := strings.Join(args, " ")
	record, refuse := v.record, v.refuse
	if !slices.Contains(views.ClusterCommands, args[0]) {
		return refuse(ruleViewUsage, fmt.Sprintf("%s takes one NODE, not a cluster; cluster-wide: %s", args[0], strings.Join(views.ClusterCommands, ", ")))
	}
	flags := args[2:]
	if status, refused := v.refuseUnrunnable(flags); refused {
		return status
	}
	var nodes []*config.Node
	for _, n := range s.conf().ReachableFor(id.Roles()) {
		if n.Cluster == cluster {
			nodes = append(nodes, n)
		}
	}
	for _, n := range nodes {
		release, ok := s.views.Acquire(id.User, n.Name)
		if !ok {
			return refuse(ruleViewLimit, fmt.Sprintf("you already run %d views on %s (limits.views_per_node); stop one first", s.views.Max(), n.Name))
		}
		defer release()
	}
	if err := s.aud.Record(ctx, audit.Gate, record(audit.DecisionAllow, "", "")); err != nil {
		writeErr(ch, pty, auditUnavailable+"\n")
		return 1
	}
	grant := s.conf().GrantsFor(id.Roles())[cluster]
	members := make([]views.Member, len(nodes))
	conns := make([]*viewConn, len(nodes))
	for i, n := range nodes {
		conn, caller := s.viewCaller(ctx, id, n, grant)
		defer conn.Close()
		conns[i] = conn
		members[i] = views.Member{Node: n.Name, Caller: caller}
	}

	run, cancel := context.WithCancel(run)
	defer cancel()
	go readKeys(ch, pty, cancel)
	// Node errors land in the output: every cookie any connection used
	// is scrubbed from it.
	out := &scrubWriter{w: viewOut(ch, pty, flags), conns: conns}
	s.log.Info("cluster view", zap.String("user", id.User), zap.String("cluster", cluster), zap.Int("nodes", len(nodes)), zap.String("command", truncate(cmdline, 128)))
	err := views.RunCluster(run, members, views.ClusterOptions{Cluster: cluster, Parallel: s.conf().Limits.ClusterViewParallel},
		append([]string{args[0]}, flags...), out)
	var partial *views.PartialError
	switch {
	case err == nil || run.Err() != nil:
		return 0
	case errors.As(err, &partial):
		return 2 // the output lists the nodes that failed
	}
	var allFailed *views.AllFailedError
	if errors.As(err, &allFailed) {
		return 1
	}
	writeErr(ch, pty, "beamgate: "+out.scrub(err.Error())+"\n")
	return 1
}

// scrubWriter removes every production cookie conns used from what it
// writes. A view writes each rendering in one Write.
type scrubWriter struct {
	w     io.Writer
	conns []*viewConn
}

func (s *scrubWriter) scrub(text string) string {
	for _, c := range s.conns {
		text = c.scrub(text)
	}
	return text
}

func (s *scrubWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, s.scrub(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// viewCommand is one view command being decided: what its command and
// view records carry, and how it is refused.
type viewCommand struct {
	s       *Server
	ctx     ssh.Context
	id      *Identity
	args    []string
	ch      gossh.Channel
	pty     bool
	node    *config.Node // the node it runs on, once known
	cluster string       // or the cluster, for a cluster-wide view
}

// record is the command's audit record.
func (v *viewCommand) record(decision audit.Decision, rule, reason string) *audit.Record {
	r := v.s.record(v.ctx, v.id, audit.EventCommand, decision, reason)
	r.Op = truncate(strings.Join(v.args, " "), 128)
	r.Rule = rule
	switch {
	case v.node != nil:
		r.Target, r.Cluster = v.node.Name, v.node.Cluster
	case v.cluster != "":
		r.Cluster = v.cluster
	}
	return r
}

// refuse audits a refusal under rule, tells the engineer and returns the
// exit status.
func (v *viewCommand) refuse(rule, msg string) uint32 {
	v.s.aud.Record(v.ctx, audit.After, v.record(audit.DecisionDeny, rule, msg))
	writeErr(v.ch, v.pty, fmt.Sprintf("beamgate: %s refused (rule %s): %s\n", v.args[0], rule, msg))
	return 1
}

// refuseUnrunnable refuses a view that cannot run here: a text --watch
// without a terminal, or a gateway with views off.
func (v *viewCommand) refuseUnrunnable(flags []string) (uint32, bool) {
	if hasFlag(flags, "watch") && !v.pty && !hasFlag(flags, "json") {
		return v.refuse(ruleViewPTY, "--watch redraws the screen and needs a terminal: run it with ssh -t (or add --json for one line per refresh)"), true
	}
	if v.s.opts.Cookies == nil {
		return v.refuse(ruleViewDisabled, "views are not configured on this gateway"), true
	}
	return 0, false
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
func viewNodeName(host string) string { return hiddenNodeName("beamgate_view_", host) }

// hiddenNodeName is a fresh hidden-node name: prefix, 12 random hex
// digits, @host.
func hiddenNodeName(prefix, host string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:]) + "@" + host
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

// dial (called with v.mu held) connects to the view's node as a hidden
// node (dialProduction).
func (v *viewConn) dial(ctx context.Context) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, viewDialTimeout)
	defer cancel()
	return dialProduction(ctx, v.cookies, v.node, v.name, &v.used)
}

// dialProduction looks n up at its epmd (at the node's dial address, as
// the relay does) and connects to it as the hidden node self, trying the
// production cookies in the order of cookies.Attempts. Every cookie it
// tried is added to used (once), so that callers can scrub them from
// text they did not write; its own errors are scrubbed already.
func dialProduction(ctx context.Context, src cookies.Source, n *config.Node, self string, used *[]string) (*client.Conn, error) {
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
	attempts := cookies.NewAttempts(src, n.Cluster)
	var last error
	for {
		cookie, err := attempts.Next(ctx)
		if err != nil {
			if last == nil {
				return nil, fmt.Errorf("cannot reach %s: no production cookie for cluster %s", n.Name, n.Cluster)
			}
			break
		}
		if !slices.Contains(*used, cookie) {
			*used = append(*used, cookie)
		}
		c, err := client.Dial(ctx, client.Config{
			Node: self, Target: n.Name, Cookie: cookie,
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
	return nil, errors.New(scrubCookies(fmt.Sprintf("cannot reach %s: %v", n.Name, last), *used))
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
