package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
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
	{"nodes", "print the nodes you may reach and whether each answers now"},
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
	var once sync.Once
	done := func() {
		once.Do(func() {
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
	if args := strings.Fields(cmd); len(args) > 0 && isViewCommand(args[0]) {
		return s.runView(ctx, run, id, args, ch, pty)
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
	case "help":
		writeHelp(&out)
	default:
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
	b := out.Bytes()
	if pty {
		b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	}
	w := ch.Write
	if status != 0 {
		w = ch.Stderr().Write
	}
	w(b)
	return status
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
	nodes := s.cfg.Reachable(id.User)
	grants := s.cfg.Grants(id.User)
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

func (s *Server) writeNodes(ctx context.Context, out *bytes.Buffer, id *Identity) []nodeStatus {
	rows := s.nodeTable(ctx, id)
	if len(rows) == 0 {
		fmt.Fprintln(out, "You may reach no nodes.")
		return rows
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCLUSTER\tGATEWAY PORT\tPOLICY\tREACHABLE NOW")
	for _, r := range rows {
		reach := "no"
		if r.reachable {
			reach = "yes"
		}
		pol := ""
		if r.grant.Profile != nil {
			pol = r.grant.Profile.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s (%s)\t%s\n", r.node.Name, r.node.Cluster, r.node.GatewayPort, pol, r.grant.Mode, reach)
	}
	tw.Flush()
	return rows
}

// writeBanner writes who the engineer is, the node table, the gateway
// cookie and the recipe to connect. It never contains a production cookie.
func (s *Server) writeBanner(ctx ssh.Context, out *bytes.Buffer, sc *gossh.ServerConn, id *Identity) {
	now := s.now()
	fmt.Fprintf(out, "beamgate: you are %s", id.User)
	if id.Cert {
		fmt.Fprintf(out, " (certificate %q, serial %d)\n", id.KeyID, id.CertSerial)
	} else {
		fmt.Fprintf(out, " (key %s)\n", id.Fingerprint)
	}
	roles := s.cfg.Users[id.User].Roles
	label := "role"
	if len(roles) > 1 {
		label = "roles"
	}
	fmt.Fprintf(out, "%s: %s\n\n", label, strings.Join(roles, ", "))

	rows := s.writeNodes(ctx, out, id)
	if len(rows) == 0 {
		return
	}
	cookie := s.opts.Gateway.Cookie(id.User, now)
	fmt.Fprintf(out, "\nYour gateway cookie (valid until %s): %s\n", s.opts.Gateway.Expires(now).UTC().Format(time.RFC3339), cookie)

	sshHost, sshPort := s.bastionAddr(ctx)
	nodes := make([]*config.Node, len(rows))
	for i, r := range rows {
		nodes[i] = r.node
	}
	hs := config.Hosts(nodes)
	for _, host := range hs {
		on := config.NodesOnHost(nodes, host)
		if len(hs) > 1 {
			fmt.Fprintf(out, "\n== Nodes on %s (one engineer node per host: ERL_EPMD_PORT reaches one host at a time) ==\n", host)
		}
		writeRecipe(out, id.User, sshHost, sshPort, host, on, cookie, s.cfg.EngineerEpmdPort, s.opts.RecipeIdentity)
	}
}

// writeRecipe writes the commands to paste for the nodes on one host.
func writeRecipe(out *bytes.Buffer, user, sshHost, sshPort, host string, on []*config.Node, cookie string, localEpmdPort int, identity string) {
	fwd := fmt.Sprintf("-L %d:%s:%d", localEpmdPort, host, config.EpmdPort)
	ports := []int{}
	for _, n := range on {
		ports = append(ports, n.GatewayPort)
	}
	sort.Ints(ports)
	for _, p := range ports {
		fwd += fmt.Sprintf(" -L %d:%s:%d", p, host, p)
	}
	portFlag := ""
	if sshPort != "22" {
		portFlag = " -p " + sshPort
	}
	if identity != "" {
		portFlag += " -i " + identity
	}
	inetrc := "$HOME/.beamgate-" + host + ".inetrc"
	fmt.Fprintf(out, "\n1. Forward epmd and the distribution port(s) (leave it running):\n\n")
	fmt.Fprintf(out, "  ssh -N %s %s@%s%s\n", fwd, user, sshHost, portFlag)
	fmt.Fprintf(out, "\n2. In another terminal, map %s to your machine and use the forwarded epmd:\n\n", host)
	fmt.Fprintf(out, "  printf '%%s\\n' '{host, {127,0,0,1}, [%q]}.' '{lookup, [file, native]}.' > %s\n", host, inetrc)
	fmt.Fprintf(out, "  export ERL_EPMD_PORT=%d ERL_INETRC=%s\n", localEpmdPort, inetrc)
	// Nodes on one host share its name style; the engineer's node must match.
	iexName, erlName := "--sname me", "-sname me"
	if on[0].LongName() {
		iexName, erlName = "--name me@127.0.0.1", "-name me@127.0.0.1"
	}
	fmt.Fprintf(out, "\n3. Start a hidden node with your gateway cookie and connect:\n\n")
	fmt.Fprintf(out, "  iex %s --hidden --cookie %s\n", iexName, cookie)
	for _, n := range on {
		fmt.Fprintf(out, "    Node.connect(:%q)\n", n.Name)
	}
	fmt.Fprintf(out, "\n  erl %s -hidden -setcookie %s\n", erlName, cookie)
	for _, n := range on {
		fmt.Fprintf(out, "    net_adm:ping('%s').\n", n.Name)
	}
}

// bastionAddr is the host and port engineers ssh to: the configured
// advertise address, else the address this connection reached.
func (s *Server) bastionAddr(ctx ssh.Context) (string, string) {
	addr := s.cfg.Advertise
	if addr == "" && ctx.LocalAddr() != nil {
		addr = ctx.LocalAddr().String()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, "22"
	}
	return host, port
}
