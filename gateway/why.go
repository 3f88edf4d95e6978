package gateway

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"beamgate/audit"
	"beamgate/gateway/config"

	"github.com/gliderlabs/ssh"
)

// whyDefault and whyMax bound how many refusals `why` lists.
const (
	whyDefault = 10
	whyMax     = recentPerUser
)

// hintAfter is how long a tunnel or a registration may stay unused
// before `why` and `check` suspect the engineer's environment.
var hintAfter = 10 * time.Second

// runWhy serves `why [-n N]`: the engineer's own recent refusals and
// failed handshakes, newest first, each with its reason and the fix.
func (s *Server) runWhy(ctx ssh.Context, out *bytes.Buffer, id *Identity, args []string) error {
	n := whyDefault
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-n" && i+1 < len(args):
			v, err := strconv.Atoi(args[i+1])
			if err != nil || v < 1 || v > whyMax {
				return fmt.Errorf("why -n takes 1..%d", whyMax)
			}
			n, i = v, i+1
		default:
			return fmt.Errorf("usage: why [-n N]")
		}
	}
	now := s.now()
	v := s.opts.Recent.Of(id.User)
	hints := s.hints(ctx, id, v, now)
	fmt.Fprintf(out, "beamgate: what this gateway saw go wrong for %s, newest first (ssh %s check walks through your last attempt)\n",
		id.User, s.sshTarget(ctx, id))
	if len(hints) == 0 && len(v.Refusals) == 0 {
		fmt.Fprintln(out, "\nNothing was refused. If your node still cannot connect, run check.")
		return nil
	}
	for _, h := range hints {
		fmt.Fprintf(out, "\n  now: %s\n    fix: %s\n", h.what, h.fix)
	}
	for i, r := range v.Refusals {
		if i == n {
			fmt.Fprintf(out, "\n(%d older; why -n %d shows them)\n", len(v.Refusals)-n, len(v.Refusals))
			break
		}
		fmt.Fprintf(out, "\n%2d. %s ago (%s)  %s\n", i+1, ago(now, r.Time), r.Time.UTC().Format("15:04:05Z"), describe(r))
		why := r.Reason
		if r.Rule != "" {
			why += " (rule " + r.Rule + ")"
		}
		fmt.Fprintf(out, "    why: %s\n    fix: %s\n", oneLine(why), fixFor(r))
	}
	return nil
}

// hint is something wrong now that no refusal records.
type hint struct{ what, fix string }

// hints looks at the engineer's live connections and last steps for the
// mistakes that leave no refusal: a tunnel nothing uses (ERL_EPMD_PORT
// unset), a registration with no lookup after it (ERL_INETRC unset).
func (s *Server) hints(ctx ssh.Context, id *Identity, v RecentView, now time.Time) []hint {
	var out []hint
	tunnels := s.tunnelsOf(ctx, id.User)
	idle := 0
	for _, t := range tunnels {
		if t.opened == 0 && now.Sub(t.since) >= hintAfter {
			idle++
		}
	}
	if idle > 0 {
		out = append(out, hint{
			what: fmt.Sprintf("%s of yours %s carried nothing since it connected", plural(idle, "ssh connection"), map[bool]string{true: "has", false: "have"}[idle == 1]),
			fix:  "your node is not using the tunnel: export the recipe's ERL_EPMD_PORT (and ERL_INETRC) in the shell that starts erl or iex",
		})
	}
	if h := v.Home; h != nil && h.Decision == audit.DecisionAllow && now.Sub(h.Time) >= hintAfter &&
		(v.Lookup == nil || v.Lookup.Time.Before(h.Time)) && (v.Session == nil || v.Session.Time.Before(h.Time)) {
		out = append(out, hint{
			what: fmt.Sprintf("your node %s registered %s ago but has not asked for a production node through the tunnel", h.Detail["alive"], ago(now, h.Time)),
			fix:  "production host names must resolve to the recipe's addresses: " + s.inetrcExports(id) + " (written by the recipe's printf) before starting the node",
		})
	}
	return out
}

// inetrcExports is the export of ERL_INETRC the recipe prints, for each
// cluster id may reach.
func (s *Server) inetrcExports(id *Identity) string {
	var out []string
	for _, cl := range slices.Sorted(maps.Keys(s.conf().GrantsFor(id.Roles()))) {
		out = append(out, "export ERL_INETRC=$HOME/.beamgate-"+cl+".inetrc")
	}
	switch len(out) {
	case 0:
		return "export ERL_INETRC as the recipe prints it"
	case 1:
		return out[0]
	}
	return strings.Join(out[:len(out)-1], ", ") + " or " + out[len(out)-1] + ", for the cluster you reach"
}

// tunnel is one of the engineer's live SSH connections.
type tunnel struct {
	since  time.Time
	opened int64 // channels opened on it so far
}

// tunnelsOf is user's live connections, other than the one asking.
func (s *Server) tunnelsOf(ctx ssh.Context, user string) []tunnel {
	self := stateOf(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []tunnel
	for c, id := range s.live {
		if id.User == user && c != self {
			out = append(out, tunnel{since: c.accepted, opened: c.opened.Load()})
		}
	}
	return out
}

// runCheck serves `check`: how far the engineer's last attempt got
// (tunnel, registration, epmd lookup, handshake and cookie proof), then a
// stock erl command that checks their own side.
func (s *Server) runCheck(ctx ssh.Context, out *bytes.Buffer, id *Identity) {
	now := s.now()
	v := s.opts.Recent.Of(id.User)
	at := func(r *audit.Record) string {
		return fmt.Sprintf("%s ago (%s)", ago(now, r.Time), r.Time.UTC().Format("15:04:05Z"))
	}
	fmt.Fprintf(out, "beamgate check: your last connection attempt, as this gateway saw it\n\n")
	step := func(name, state, detail string) {
		fmt.Fprintf(out, "  %-22s %-8s %s\n", name, state, detail)
	}
	tunnels := s.tunnelsOf(ctx, id.User)
	switch {
	case len(tunnels) == 0:
		step("tunnel (ssh -N)", "MISSING", "no other ssh connection of yours is open on this gateway: run the recipe's ssh -N (ssh "+s.sshTarget(ctx, id)+" recipe)")
	default:
		var opened int64
		since := tunnels[0].since
		for _, t := range tunnels {
			opened += t.opened
			if t.since.Before(since) {
				since = t.since
			}
		}
		step("tunnel (ssh -N)", "ok", fmt.Sprintf("%s open, the oldest since %s, %d channels opened", plural(len(tunnels), "connection"), since.UTC().Format("15:04:05Z"), opened))
	}
	switch h := v.Home; {
	case h == nil:
		step("node registered", "not seen", "no node registered through the tunnel: ERL_EPMD_PORT must be the recipe's port in the shell that starts it")
	case h.Decision == audit.DecisionAllow:
		step("node registered", "ok", fmt.Sprintf("%s, %s", h.Detail["alive"], at(h)))
	default:
		step("node registered", "REFUSED", fmt.Sprintf("%s, %s: %s; fix: %s", h.Detail["alive"], at(h), h.Reason, fixFor(*h)))
	}
	switch l := v.Lookup; {
	case l == nil:
		step("epmd lookup", "not seen", "no production node was looked up through the tunnel: ERL_INETRC must be the recipe's file")
	case l.Decision == audit.DecisionAllow:
		step("epmd lookup", "ok", fmt.Sprintf("%s on %s, %s", l.Detail["alive"], hostOf(l.Dest), at(l)))
	default:
		step("epmd lookup", "REFUSED", fmt.Sprintf("%s on %s, %s: %s", l.Detail["alive"], hostOf(l.Dest), at(l), fixFor(*l)))
	}
	switch r := v.Session; {
	case r == nil:
		step("handshake", "not seen", "no connection of your node reached the relay")
		step("cookie proof", "not seen", "")
	case r.Event == audit.EventSessionStart:
		step("handshake", "ok", fmt.Sprintf("%s → %s, %s", r.Engineer, r.Target, at(r)))
		step("cookie proof", "ok", "your gateway cookie was accepted")
	case strings.HasPrefix(r.Rule, "gateway-cookie"):
		step("handshake", "ok", fmt.Sprintf("%s → %s, %s", r.Engineer, r.Target, at(r)))
		step("cookie proof", "REFUSED", oneLine(r.Reason)+"; fix: "+fixFor(*r))
	default:
		step("handshake", "REFUSED", fmt.Sprintf("%s → %s, %s: %s (rule %s); fix: %s", r.Engineer, r.Target, at(r), oneLine(r.Reason), r.Rule, fixFor(*r)))
		step("cookie proof", "not seen", "")
	}
	if len(v.Refusals) > 0 {
		fmt.Fprintf(out, "\n  %s recorded for you; ssh %s why lists them with fixes.\n", plural(len(v.Refusals), "refusal"), s.sshTarget(ctx, id))
	}
	fmt.Fprintf(out, "\nCheck your side: paste this into the shell that starts your node (it reads the environment,\nresolves each host and asks the tunnel's epmd):\n")
	for _, cl := range slices.Sorted(maps.Keys(s.conf().GrantsFor(id.Roles()))) {
		if l, ok := s.conf().Layout(cl); ok {
			fmt.Fprintf(out, "\n  # cluster %s\n  %s\n", cl, localCheck(l))
		}
	}
}

// localCheck is a one-line stock erl command that prints what an
// engineer's node would see: ERL_EPMD_PORT and ERL_INETRC against the
// recipe, each host's address, the home epmd and each host's epmd face.
func localCheck(l config.ClusterLayout) string {
	var hosts []string
	for _, h := range l.Hosts {
		hosts = append(hosts, fmt.Sprintf(`{"%s", "%s", {%s}, "%s"}`, h.Host, h.Addr, strings.ReplaceAll(h.Addr, ".", ","), h.Nodes[0].Alive))
	}
	return fmt.Sprintf(`erl -noshell -eval 'io:format("ERL_EPMD_PORT=~s (recipe: %d)~nERL_INETRC=~s (recipe: $HOME/.beamgate-%s.inetrc)~n", [os:getenv("ERL_EPMD_PORT", "unset"), os:getenv("ERL_INETRC", "unset")]), `+
		`io:format("your epmd through the tunnel: ~p~n", [erl_epmd:names({127,0,0,1})]), `+
		`[io:format("~s resolves to ~w (recipe: ~s); its epmd for ~s: ~w~n", [H, inet:getaddr(H, inet), A, N, erl_epmd:port_please(N, IP)]) || {H, A, IP, N} <- [%s]], halt().'`,
		l.EpmdPort, l.Cluster, strings.Join(hosts, ", "))
}

// describe says what a refused record was about, for why.
func describe(r audit.Record) string {
	switch r.Event {
	case audit.EventSessionRefused:
		if r.Engineer != "" {
			return fmt.Sprintf("your node %s connecting to %s: refused", r.Engineer, r.Target)
		}
		return "a connection to " + r.Target + ": refused"
	case audit.EventMessage:
		what := r.MFA
		if what == "" {
			what = r.Op
		} else if r.Op != "" {
			what += " (" + strings.ToLower(r.Op) + ")"
		}
		return fmt.Sprintf("%s from %s to %s: refused, not forwarded", what, r.Engineer, r.Target)
	case audit.EventView:
		return fmt.Sprintf("a view's call %s on %s: refused", r.MFA, r.Target)
	case audit.EventEpmd:
		if r.Op == "ALIVE2_REQ" {
			return fmt.Sprintf("your node %s registering through the tunnel: refused", r.Detail["alive"])
		}
		return fmt.Sprintf("epmd lookup of %s on %s: not found", r.Detail["alive"], hostOf(r.Dest))
	case audit.EventForward:
		return "ssh -L to " + r.Dest + ": refused"
	case audit.EventLogin:
		return fmt.Sprintf("login as %s from %s: refused", r.User, r.SourceAddr)
	case audit.EventCommand, audit.EventExec:
		return fmt.Sprintf("ssh bastion %s: refused", r.Op)
	}
	what := string(r.Event)
	if r.Op != "" {
		what += " " + r.Op
	}
	return what + ": refused"
}

// ruleFixes is what to do about a refusal, by its exact rule.
var ruleFixes = map[string]string{
	"gateway-cookie.production": "take the production cookie off your machine (~/.erlang.cookie, scripts, shell history) and start your node with your gateway cookie: ssh bastion cookie",
	"gateway-cookie.expired":    "gateway cookies rotate: run ssh bastion cookie and restart your node with -setcookie (erl) or --cookie (iex) set to it",
	"gateway-cookie":            "run ssh bastion cookie and start your node with -setcookie (erl) or --cookie (iex) set to exactly that",
	"handshake.name_me":         "start your node with a name: -sname NAME (erl) or --sname NAME (iex), as the recipe does",
	"production.alive":          "pick another -sname (--sname in iex): a node of that name is already connected to that production node, maybe your own still running",
	"handshake.name":            "pick another -sname (--sname in iex): production nodes' own names are taken",
	"handshake.version":         "use OTP 23 or later on your machine",
	"production.unreachable":    "the production node did not answer the bastion; ssh bastion nodes shows which nodes answer now",
	"cookie.unavailable":        notYours,
	"production.cookie":         notYours,
	"production.digest":         notYours,
	"production.name":           notYours,
	"remote-shell":              "remote shells are not allowed through beamgate: use observer, rpc:call of a read, or the views (ssh bastion top, info, apps, stats)",
	"secrets":                   "beamgate never reveals cookies, arguments, environment or files; nothing to fix on your side",
	"code-wrapper":              "call the function itself with rpc:call(Node, M, F, Args), without funs, apply, rpc-in-rpc or eval",
	"no-code":                   "call the function itself with rpc:call(Node, M, F, Args), without funs, apply, rpc-in-rpc or eval",
	"cluster.membership":        "start your node with -connect_all false (as the recipe does) or -hidden",
	"identity":                  "send only from your own node's processes",
}

const notYours = "not your mistake: the gateway could not prove itself to production; tell the bastion's operators (the audit log has the details)"

// eventFixes is what to do about a refusal no rule fix covers, by event.
var eventFixes = map[audit.Event]string{
	audit.EventEpmd:    "check the node name against ssh bastion nodes, and that ERL_INETRC maps each host to its recipe address",
	audit.EventForward: "forward only what the recipe prints (ssh bastion recipe)",
	audit.EventLogin:   "use a key (or certificate) registered for this user: ssh -i KEY; ask the operators if it should be",
	audit.EventExec:    "ssh bastion help lists the commands",
	audit.EventCommand: "ssh bastion help lists the commands",
	audit.EventMessage: "a state change or a read this role may not make: it never reached production; read-only tools work, changes need a role in mode: audit",
	audit.EventView:    "a state change or a read this role may not make: it never reached production; read-only tools work, changes need a role in mode: audit",
}

// fixFor is what the engineer should do about a refusal.
func fixFor(r audit.Record) string {
	if f, ok := ruleFixes[r.Rule]; ok {
		return f
	}
	switch {
	case strings.HasPrefix(r.Rule, "gateway-cookie"):
		return ruleFixes["gateway-cookie"]
	case strings.HasPrefix(r.Rule, "handshake") || strings.HasPrefix(r.Rule, "production"):
		return "your node broke off the handshake; if it named another node than it reached, ERL_INETRC maps a host to the wrong address: run the recipe's printf line again"
	case strings.HasPrefix(r.Rule, "view."):
		return "see ssh bastion help " + firstWord(r.Op)
	case r.Event == audit.EventEpmd && r.Op == "ALIVE2_REQ":
		return "a node of that name already runs through this tunnel: pick another -sname"
	}
	if f, ok := eventFixes[r.Event]; ok {
		return f
	}
	return "see the reason; ssh bastion help lists what you can do"
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// hostOf is the host of a host:port destination.
func hostOf(dest string) string {
	h, _, ok := strings.Cut(dest, ":")
	if !ok {
		return dest
	}
	return h
}

// oneLine flattens s for a line of output.
func oneLine(s string) string {
	return truncate(strings.Join(strings.Fields(s), " "), 400)
}

// ago is how long before now t was, rounded for people.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}
