package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"beamgate/audit"
	"beamgate/gateway/config"
	"beamgate/gateway/views"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Commands a session may run. Anything else is refused.
var sessionCommands = []struct{ name, help string }{
	{"", "(no command) who you are, your nodes, your gateway cookie and the recipe to connect"},
	{"cookie", "print your gateway cookie only, for scripts"},
	{"nodes", "print the nodes you may reach, cluster by cluster, and whether each answers now"},
	{"recipe", "recipe [CLUSTER]: your gateway cookie and the commands to reach every node of a cluster"},
	{"why", "why [-n N]: your recent refusals and failed connections, newest first, each with its reason and the fix"},
	{"check", "how far your last connection attempt got (tunnel, registration, epmd, handshake, cookie), and a command that checks your side"},
	{"shell-request", "shell-request NODE --reason TEXT [--for 30m]: ask for a recorded break-glass shell on NODE"},
	{"shell-requests", "the pending break-glass requests you may approve"},
	{"shell-approve", "shell-approve ID: approve a break-glass request (never your own)"},
	{"shell-deny", "shell-deny ID --reason TEXT: deny a break-glass request"},
	{"shell-grants", "your active break-glass grants (an approver's: every one on their clusters) and their expiry"},
	{"shell-revoke", "shell-revoke ID: end a grant and its live shells at once"},
	{"shell", "shell NODE [--elixir]: under a grant, an Erlang (or IEx) shell on NODE; every line is recorded before it runs (ssh -t)"},
	{"help", "print this list"},
}

// maxExecCommand bounds the exec command read from a client.
const maxExecCommand = 1024

// handleSession serves a session channel. It is not a shell: shell and
// exec run one of the built-in commands and exit; subsystems, X11, agent
// forwarding and other exec commands are refused and audited. A PTY is
// accepted only so `ssh alice@bastion` shows the banner.
func (s *Server) handleSession(_ *ssh.Server, sc *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	id, ok := identityOf(sc)
	if !ok {
		newChan.Reject(gossh.Prohibited, "not authenticated")
		return
	}
	c := stateOf(ctx)
	if !c.openChannel() {
		r := s.record(ctx, id, audit.EventSession, audit.DecisionDeny, "too many channels on this connection")
		s.aud.Record(ctx, audit.After, r)
		newChan.Reject(gossh.ResourceShortage, "too many channels on this connection")
		return
	}
	ch, reqs, err := newChan.Accept()
	if err != nil {
		c.closeChannel()
		return
	}
	// run ends when the channel closes (the engineer quit ssh) or the
	// connection ends: a long-running view stops with it.
	run, stop := context.WithCancel(ctx)
	c.addSession(ch)
	var once sync.Once
	done := func() {
		once.Do(func() {
			c.removeSession(ch)
			ch.Close()
			c.closeChannel()
			stop()
		})
	}
	defer func() {
		// Drain requests until the channel closes.
		go func() {
			defer stop()
			for req := range reqs {
				if req.WantReply {
					req.Reply(false, nil)
				}
			}
		}()
	}()

	pty := false
	for {
		var req *gossh.Request
		select {
		case req, ok = <-reqs:
			if !ok {
				done()
				return
			}
		case <-ctx.Done():
			done()
			return
		}
		switch req.Type {
		case "pty-req":
			pty = true
			req.Reply(true, nil)
		case "env", "window-change", "signal", "break":
			req.Reply(false, nil) // ignored
		case "shell", "exec":
			var cmd string
			if req.Type == "exec" {
				var p struct{ Command string }
				if gossh.Unmarshal(req.Payload, &p) != nil || len(p.Command) > maxExecCommand {
					req.Reply(false, nil)
					s.aud.Record(ctx, audit.After, s.record(ctx, id, audit.EventExec, audit.DecisionDeny, "malformed exec request"))
					continue
				}
				cmd = p.Command
			}
			req.Reply(true, nil)
			go func() {
				defer done()
				status := s.runCommand(ctx, run, sc, id, strings.TrimSpace(cmd), ch, pty)
				ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{status}))
			}()
			return
		default:
			// subsystem (sftp), x11-req, auth-agent-req@openssh.com and
			// anything else are refused.
			r := s.record(ctx, id, audit.EventSessionReq, audit.DecisionDeny, "refused: a beamgate session is not a shell")
			r.Op = truncate(req.Type, 64)
			if req.Type == "subsystem" {
				var p struct{ Name string }
				if gossh.Unmarshal(req.Payload, &p) == nil {
					r.Detail = mergeDetail(r.Detail, "subsystem", truncate(p.Name, 64))
				}
			}
			s.aud.Record(ctx, audit.After, r)
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

// runCommand writes the output of one session command and returns its
// exit status. run ends when the channel closes.
func (s *Server) runCommand(ctx ssh.Context, run context.Context, sc *gossh.ServerConn, id *Identity, cmd string, ch gossh.Channel, pty bool) uint32 {
	args := strings.Fields(cmd)
	if topic, ok := helpTopic(args); ok {
		return s.runHelp(ctx, id, cmd, topic, ch, pty)
	}
	if len(args) > 0 && isViewCommand(args[0]) {
		return s.runView(ctx, run, id, args, ch, pty)
	}
	if len(args) > 0 && args[0] == "shell" {
		return s.runShell(ctx, run, id, args, ch, pty)
	}
	if len(args) > 0 && isShellCommand(args[0]) {
		var out bytes.Buffer
		status := s.runShellCommand(ctx, id, args, &out)
		writeOutput(ch, []byte(s.localize(ctx, id, out.String())), status, pty)
		return status
	}
	var out bytes.Buffer
	var status uint32
	decision, reason := audit.DecisionAllow, ""
	switch cmd {
	case "":
		s.writeBanner(ctx, &out, sc, id)
	case "cookie":
		fmt.Fprintln(&out, s.opts.Gateway.Cookie(id.User, s.now()))
	case "nodes":
		s.writeNodes(ctx, &out, id)
	case "check":
		s.runCheck(ctx, &out, id)
	default:
		if len(args) > 0 && args[0] == "why" {
			if err := s.runWhy(ctx, &out, id, args[1:]); err != nil {
				status = 1
				decision, reason = audit.DecisionDeny, err.Error()
				out.Reset()
				fmt.Fprintf(&out, "beamgate: %s\n", err)
			}
			break
		}
		if len(args) > 0 && args[0] == "recipe" {
			if err := s.runRecipe(ctx, &out, id, args[1:]); err != nil {
				status = 1
				decision, reason = audit.DecisionDeny, err.Error()
				out.Reset()
				fmt.Fprintf(&out, "beamgate: recipe: %s\n", err)
			}
			break
		}
		status = 1
		decision, reason = audit.DecisionDeny, "command not allowed"
		fmt.Fprintf(&out, "beamgate: %q is not a command here; a beamgate session is not a shell.\n", truncate(cmd, 80))
		writeHelp(&out)
	}
	r := s.record(ctx, id, audit.EventExec, decision, reason)
	r.Op = truncate(cmd, 128)
	if decision == audit.DecisionDeny {
		s.aud.Record(ctx, audit.After, r)
	} else if err := s.aud.Record(ctx, audit.Gate, r); err != nil {
		// The banner and the cookie command hand out the gateway cookie:
		// nothing is shown unless its record is on disk.
		out.Reset()
		status = 1
		fmt.Fprintln(&out, auditUnavailable)
	}
	writeOutput(ch, []byte(s.localize(ctx, id, out.String())), status, pty)
	return status
}

// helpTopic recognises `help COMMAND`, `COMMAND --help` and `COMMAND -h`
// and returns COMMAND ("" for plain help).
func helpTopic(args []string) (string, bool) {
	switch {
	case len(args) == 0:
		return "", false
	case args[0] == "help" || args[0] == "--help" || args[0] == "-h":
		if len(args) > 1 {
			return args[1], true
		}
		return "", true
	}
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "--help" || a == "-h" || a == "-help" {
			return args[0], true
		}
	}
	return "", false
}

// runHelp writes help for topic (every command when ""), audited.
func (s *Server) runHelp(ctx ssh.Context, id *Identity, cmd, topic string, ch gossh.Channel, pty bool) uint32 {
	var out bytes.Buffer
	status := uint32(0)
	switch {
	case topic == "":
		writeHelp(&out)
	case isViewCommand(topic):
		out.WriteString(views.CommandHelp(topic))
	default:
		found := false
		for _, c := range sessionCommands {
			if c.name == topic && c.name != "" {
				fmt.Fprintf(&out, "%s: %s\n", c.name, c.help)
				found = true
			}
		}
		if !found {
			status = 1
			fmt.Fprintf(&out, "beamgate: no command %q\n\n", truncate(topic, 80))
			writeHelp(&out)
		}
	}
	r := s.record(ctx, id, audit.EventExec, audit.DecisionAllow, "")
	r.Op = truncate(cmd, 128)
	s.aud.Record(ctx, audit.After, r)
	writeOutput(ch, []byte(s.localize(ctx, id, out.String())), status, pty)
	return status
}

// writeOutput writes a command's output: to stdout, or stderr when it
// failed; with CRLF line ends on a terminal.
func writeOutput(ch gossh.Channel, b []byte, status uint32, pty bool) {
	if pty {
		b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	}
	if status != 0 {
		ch.Stderr().Write(b)
	} else {
		ch.Write(b)
	}
}

func writeHelp(w *bytes.Buffer) {
	fmt.Fprintln(w, "Commands (ssh USER@BASTION COMMAND):")
	for _, c := range sessionCommands {
		name := c.name
		if name == "" {
			name = "(none)"
		}
		fmt.Fprintf(w, "  %-8s %s\n", name, c.help)
	}
	fmt.Fprintln(w)
	w.WriteString(views.Help())
}

// nodeStatus is one row of the node table.
type nodeStatus struct {
	node      *config.Node
	grant     config.Grant
	reachable bool
}

// nodeTable checks every node id may reach, concurrently and bounded by
// reachTimeout.
func (s *Server) nodeTable(ctx context.Context, id *Identity) []nodeStatus {
	nodes := s.conf().ReachableFor(id.Roles())
	grants := s.conf().GrantsFor(id.Roles())
	rows := make([]nodeStatus, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		rows[i] = nodeStatus{node: n, grant: grants[n.Cluster]}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, reachTimeout)
			defer cancel()
			rows[i].reachable = s.reach(rctx, n)
		}()
	}
	wg.Wait()
	return rows
}

// writeNodes writes the node table, cluster by cluster: every node with
// its host, where the recipe puts it on the engineer's machine, and
// whether it answers now.
func (s *Server) writeNodes(ctx context.Context, out *bytes.Buffer, id *Identity) []nodeStatus {
	rows := s.nodeTable(ctx, id)
	if len(rows) == 0 {
		fmt.Fprintln(out, "You may reach no nodes.")
		return rows
	}
	for i, cl := range clustersOf(rows) {
		var in []nodeStatus
		for _, r := range rows {
			if r.node.Cluster == cl {
				in = append(in, r)
			}
		}
		g := in[0].grant
		pol := ""
		if g.Profile != nil {
			pol = g.Profile.Name
		}
		up := 0
		for _, r := range in {
			if r.reachable {
				up++
			}
		}
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "Cluster %s: %s, %d of %d reachable now (role %s: policy %s, mode %s)\n",
			cl, plural(len(in), "node"), up, len(in), g.Role, pol, g.Mode)
		tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  NODE\tHOST\tON YOUR MACHINE\tREACHABLE NOW")
		for _, r := range in {
			reach := "no"
			if r.reachable {
				reach = "yes"
			}
			loc := s.conf().LocalOf(r.node)
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.node.Name, r.node.Host, net.JoinHostPort(loc.Addr, strconv.Itoa(loc.DistPort)), reach)
		}
		tw.Flush()
	}
	return rows
}

// clustersOf is the distinct clusters of rows, sorted.
func clustersOf(rows []nodeStatus) []string {
	var out []string
	for _, r := range rows {
		if !slices.Contains(out, r.node.Cluster) {
			out = append(out, r.node.Cluster)
		}
	}
	slices.Sort(out)
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// writeBanner writes who the engineer is, the node table, the gateway
// cookie and the recipe of every cluster. It never contains a production
// cookie.
func (s *Server) writeBanner(ctx ssh.Context, out *bytes.Buffer, sc *gossh.ServerConn, id *Identity) {
	fmt.Fprintf(out, "beamgate: you are %s", id.User)
	if id.Cert {
		fmt.Fprintf(out, " (certificate %q, serial %d)\n", id.KeyID, id.CertSerial)
	} else {
		fmt.Fprintf(out, " (key %s)\n", id.Fingerprint)
	}
	roles := id.Roles()
	label := "role"
	if len(roles) > 1 {
		label = "roles"
	}
	fmt.Fprintf(out, "%s: %s (from %s)\n", label, strings.Join(roles, ", "), roleSourceText(id))
	if id.Cert {
		fmt.Fprintf(out, "certificate from CA %s (%s), ", id.CA, id.CAFingerprint)
		if id.CertExpires.IsZero() {
			fmt.Fprintf(out, "valid with no end\n")
		} else {
			fmt.Fprintf(out, "valid until %s (in %s): your sessions end then; sign a new certificate and reconnect\n",
				id.CertExpires.UTC().Format(time.RFC3339), id.CertExpires.Sub(s.now()).Round(time.Minute))
		}
	}
	out.WriteString("\n")

	rows := s.writeNodes(ctx, out, id)
	if len(rows) == 0 {
		return
	}
	clusters := clustersOf(rows)
	s.writeCookie(out, id)
	if len(clusters) > 1 {
		fmt.Fprintf(out, "\nOne recipe per cluster; they use their own ports and addresses, so they run side by side.\n"+
			"`ssh %s recipe CLUSTER` prints one of them.\n", s.sshTarget(ctx, id))
	}
	for _, cl := range clusters {
		s.writeRecipe(ctx, out, id, cl)
	}
}

// roleSourceText says where id's roles came from, for the banner.
func roleSourceText(id *Identity) string {
	switch id.RoleSource {
	case rolesFromCert:
		return "your certificate"
	case rolesFromBoth:
		return "your certificate and your users: entry"
	}
	return "the gateway's users: entry for " + id.User
}

// writeCookie writes the engineer's gateway cookie and its expiry.
func (s *Server) writeCookie(out *bytes.Buffer, id *Identity) {
	now := s.now()
	fmt.Fprintf(out, "\nYour gateway cookie (valid until %s): %s\n", s.opts.Gateway.Expires(now).UTC().Format(time.RFC3339), s.opts.Gateway.Cookie(id.User, now))
}

// runRecipe serves `recipe [CLUSTER]`: the gateway cookie and the recipe
// of one cluster, or of every cluster id may reach.
func (s *Server) runRecipe(ctx ssh.Context, out *bytes.Buffer, id *Identity, args []string) error {
	grants := s.conf().GrantsFor(id.Roles())
	clusters := slices.Sorted(maps.Keys(grants))
	if len(clusters) == 0 {
		return errors.New("you may reach no clusters")
	}
	switch {
	case len(args) > 1:
		return errors.New("usage: recipe [CLUSTER]")
	case len(args) == 1:
		if _, ok := grants[args[0]]; !ok {
			return fmt.Errorf("%q is not a cluster you may reach; your clusters: %s", truncate(args[0], 80), strings.Join(clusters, ", "))
		}
		clusters = args
	}
	s.writeCookie(out, id)
	for _, cl := range clusters {
		s.writeRecipe(ctx, out, id, cl)
	}
	return nil
}

// sshTarget is what engineers type after ssh to reach this gateway
// (user@host [-p port] [-i key]): -i when the recipe names a key
// (beamgate dev's generated one), so a printed command works as pasted.
func (s *Server) sshTarget(ctx ssh.Context, id *Identity) string {
	t := id.User + "@" + s.sshHost(ctx)
	if s.opts.RecipeIdentity != "" {
		t += " -i " + s.opts.RecipeIdentity
	}
	return t
}

// localize names this gateway, as id reaches it, in the commands a
// message prints: messages written once for every engineer say
// "ssh bastion COMMAND" (and "ssh -t bastion ..."), which id could not
// paste as printed.
func (s *Server) localize(ctx ssh.Context, id *Identity, text string) string {
	t := s.sshTarget(ctx, id)
	return strings.NewReplacer("ssh bastion ", "ssh "+t+" ", "ssh -t bastion ", "ssh -t "+t+" ", "ssh USER@BASTION ", "ssh "+t+" ").Replace(text)
}

// sshHost is the bastion as the engineer reached it, without a user:
// host, and -p PORT unless it is 22 (for commands other engineers run).
func (s *Server) sshHost(ctx ssh.Context) string {
	host, port := s.bastionAddr(ctx)
	if port != "22" {
		return host + " -p " + port
	}
	return host
}

// writeRecipe writes one cluster's recipe for id.
func (s *Server) writeRecipe(ctx ssh.Context, out *bytes.Buffer, id *Identity, cluster string) {
	l, ok := s.conf().Layout(cluster)
	if !ok {
		return
	}
	sshHost, sshPort := s.bastionAddr(ctx)
	writeRecipe(out, recipe{
		User: id.User, SSHHost: sshHost, SSHPort: sshPort, Identity: s.opts.RecipeIdentity,
		Cookie: s.opts.Gateway.Cookie(id.User, s.now()), Layout: l,
	})
}

// recipe is what one cluster's recipe is written from.
type recipe struct {
	User, SSHHost, SSHPort string
	Identity               string // -i for ssh, when set
	Cookie                 string
	Layout                 config.ClusterLayout
}

// writeRecipe writes the commands to paste to reach every node of a
// cluster from one engineer node: one ssh -N carrying every forward, one
// environment, one erl or iex node that connects to them all. Each host
// gets its own loopback address (config.Layout), so nodes with the same
// short name on different hosts stay apart: epmd's PORT_PLEASE2 names
// only the short name, so the address asked is what tells hosts apart.
func writeRecipe(out *bytes.Buffer, r recipe) {
	l := r.Layout
	nodes := l.Nodes()
	if len(nodes) == 0 {
		return
	}
	fwd := []string{fmt.Sprintf("-L %d:%s:%d", l.EpmdPort, config.HomeHost, l.EpmdPort)}
	var hostsRC []string
	for _, h := range l.Hosts {
		fwd = append(fwd, fmt.Sprintf("-L %s:%d:%s:%d", h.Addr, l.EpmdPort, h.Host, l.EpmdPort))
		ports := []int{}
		for _, n := range h.Nodes {
			ports = append(ports, n.GatewayPort)
		}
		sort.Ints(ports)
		for _, p := range ports {
			fwd = append(fwd, fmt.Sprintf("-L %s:%d:%s:%d", h.Addr, p, h.Host, p))
		}
		hostsRC = append(hostsRC, fmt.Sprintf("'{host, {%s}, [%q]}.'", strings.ReplaceAll(h.Addr, ".", ","), h.Host))
	}
	sshArgs := ""
	if r.SSHPort != "22" {
		sshArgs = " -p " + r.SSHPort
	}
	if r.Identity != "" {
		sshArgs += " -i " + r.Identity
	}
	inetrc := "$HOME/.beamgate-" + l.Cluster + ".inetrc"
	fmt.Fprintf(out, "\n== Cluster %s: %s on %s ==\n", l.Cluster, plural(len(nodes), "node"), plural(len(l.Hosts), "host"))
	fmt.Fprintf(out, "\n1. Forward epmd and the distribution ports (leave it running):\n\n")
	fmt.Fprintf(out, "  ssh -N -o ExitOnForwardFailure=yes %s %s@%s%s\n", strings.Join(fwd, " "), r.User, r.SSHHost, sshArgs)
	fmt.Fprintf(out, "\n   Each host has its own loopback address, as nodes on different hosts may share a name.\n"+
		"   Linux needs nothing (it routes all of 127.0.0.0/8). macOS needs an alias per address, once per boot:\n\n")
	fmt.Fprintf(out, "  for a in %s; do sudo ifconfig lo0 alias $a up; done\n", strings.Join(l.Addrs(), " "))
	fmt.Fprintf(out, "\n2. In another terminal, map each host to its address and use the forwarded epmd:\n\n")
	fmt.Fprintf(out, "  printf '%%s\\n' %s '{lookup, [file, native]}.' > %s\n", strings.Join(hostsRC, " "), inetrc)
	fmt.Fprintf(out, "  export ERL_EPMD_PORT=%d ERL_INETRC=%s\n", l.EpmdPort, inetrc)

	// A cluster's nodes share one name style (config validates it). The
	// erl and iex nodes get different names, so both can run at once, and
	// production's operators see whose node it is.
	erlAlive, iexAlive := engineerAlive(r.User, "erl"), engineerAlive(r.User, "iex")
	iexName, erlName := "--sname "+iexAlive, "-sname "+erlAlive
	if nodes[0].LongName() {
		iexName, erlName = "--name "+iexAlive+"@127.0.0.1", "-name "+erlAlive+"@127.0.0.1"
	}
	erlList := make([]string, len(nodes))
	exList := make([]string, len(nodes))
	for i, n := range nodes {
		erlList[i] = "'" + n.Name + "'"
		exList[i] = fmt.Sprintf(":%q", n.Name)
	}
	fmt.Fprintf(out, "\n3. Start your node with your gateway cookie; it connects to all %s, and observer's Nodes menu lists them.\n"+
		"   -connect_all false keeps it out of the cluster's global sync; production sees it as a hidden node.\n\n", plural(len(nodes), "node"))
	fmt.Fprintf(out, "  erl %s -connect_all false -setcookie %s -eval \"%s\"\n", erlName, r.Cookie, erlConnectAll(erlList))
	fmt.Fprintf(out, "\n  or, in Elixir:\n\n  iex %s --cookie %s --erl \"-connect_all false\" -e '%s'\n", iexName, r.Cookie, iexConnectAll(exList))
	fmt.Fprintf(out, "\n4. Then observer:start(). (iex: :observer.start()) and pick a node in its Nodes menu, or rpc:multicall(nodes(), M, F, A).\n")
}

// engineerAlive is the alive name the recipe gives user's node of kind
// (erl or iex): the user name with what an alive name cannot hold
// replaced, then the kind.
func engineerAlive(user, kind string) string {
	b := []byte(user)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b) + "_" + kind
}

// erlConnectAll is an erl -eval expression (for a double-quoted shell
// word) connecting to nodes in parallel and printing what connected.
func erlConnectAll(nodes []string) string {
	return fmt.Sprintf(`Ns = [%s], P = self(), [spawn(fun() -> erlang:send(P, {N, net_kernel:connect_node(N)}) end) || N <- Ns], `+
		`R = [receive {N, X} -> {N, X} end || N <- Ns], `+
		`io:format(\"beamgate: connected ~w, not connected ~w~n\", [[N || {N, true} <- R], [N || {N, X} <- R, X =/= true]])`,
		strings.Join(nodes, ", "))
}

// iexConnectAll is the same for iex -e (a single-quoted shell word).
func iexConnectAll(nodes []string) string {
	return fmt.Sprintf(`r = [%s] |> Task.async_stream(&{&1, Node.connect(&1)}, timeout: :infinity) |> Enum.map(fn {:ok, x} -> x end); `+
		`IO.puts("beamgate: connected #{inspect(for {n, true} <- r, do: n)}, not connected #{inspect(for {n, x} <- r, x != true, do: n)}")`,
		strings.Join(nodes, ", "))
}

// bastionAddr is the host and port engineers ssh to: the configured
// advertise address, else the address this connection reached.
func (s *Server) bastionAddr(ctx ssh.Context) (string, string) {
	addr := s.conf().Advertise
	if addr == "" && ctx.LocalAddr() != nil {
		addr = ctx.LocalAddr().String()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, "22"
	}
	return host, port
}
