package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"beamgate/audit"
	"beamgate/gateway/config"
	"beamgate/gateway/dist/client"
	"beamgate/gateway/dist/term"
	"beamgate/policy"

	"github.com/gliderlabs/ssh"
	"go.uber.org/zap"
	gossh "golang.org/x/crypto/ssh"
	xterm "golang.org/x/term"
)

// The break-glass shell (`ssh -t bastion shell NODE [--elixir]`): under an
// active grant, a line-edited Erlang or IEx shell whose expressions run
// on NODE. Each expression is on disk in the audit log (shell_input)
// before it is sent to production; what it printed and returned follows
// (shell_output). The shell ends at the grant's expiry, its revocation
// (on any replica: the grant is checked before every expression and every
// few seconds), or when the engineer leaves.

// Bounds of a shell.
const (
	maxShellExpr      = 64 << 10 // bytes of one expression
	maxShellOutRecord = 4 << 10  // bytes of output kept per record
	maxShellOutTotal  = 1 << 20  // bytes of output recorded per shell
	shellEvalTimeout  = 5 * time.Minute
	shellGrantCheck   = 2 * time.Second
	maxShellBindings  = 4 << 20 // bytes of the shell's variable bindings kept between expressions
)

// shellDriver runs one expression on production. Bindings: Parent (our
// pid), Src (the expression, a binary), B (the bindings, a
// term_to_binary), Lang (erlang or elixir). Output goes to a collector
// that is the evaluating process's group leader; the reply to Parent is
// {beamgate_shell, more} for incomplete input, or {beamgate_shell,
// Printed, Output, NewB}. It keeps nothing on production.
const shellDriver = `Cap = spawn(fun() -> Col = fun Col(Acc, N) ->
    receive
      {io_request, F, R, Req} ->
        {Reply, Bin} = case Req of
          {put_chars, E, C} -> {ok, unicode:characters_to_binary(C, E)};
          {put_chars, E, M, Fn, A} -> {ok, unicode:characters_to_binary(apply(M, Fn, A), E)};
          {put_chars, C} -> {ok, unicode:characters_to_binary(C)};
          {get_geometry, columns} -> {{ok, 80}, <<>>};
          {get_geometry, rows} -> {{ok, 24}, <<>>};
          getopts -> {[{binary, false}, {encoding, unicode}], <<>>};
          _ -> {{error, enotsup}, <<>>}
        end,
        F ! {io_reply, R, Reply},
        Keep = if N + byte_size(Bin) =< 1048576 -> Bin; true -> <<>> end,
        Col([Acc, Keep], N + byte_size(Keep));
      {beamgate_done, P} -> P ! {beamgate_out, iolist_to_binary(Acc)}
    end end, Col([], 0) end),
  group_leader(Cap, self()),
  Bs0 = binary_to_term(B),
  Res = try
    case Lang of
      erlang ->
        case erl_scan:tokens([], unicode:characters_to_list(Src), 1) of
          {more, _} -> more;
          {done, {ok, Toks, _}, _} ->
            {ok, Exprs} = erl_parse:parse_exprs(Toks),
            {value, V, Bs1} = erl_eval:exprs(Exprs, Bs0),
            {ok, io_lib:format("~tp", [V]), Bs1};
          {done, {error, Info, _}, _} -> {error, io_lib:format("* syntax error: ~tp", [Info]), Bs0}
        end;
      elixir ->
        case 'Elixir.Code':string_to_quoted(Src) of
          {error, {_, Msg, _}} when is_binary(Msg) -> case binary:match(Msg, <<"missing terminator">>) of nomatch -> {error, Msg, Bs0}; _ -> more end;
          {error, _} = E -> {error, io_lib:format("~tp", [E]), Bs0};
          {ok, _} ->
            {V, Bs1} = 'Elixir.Code':eval_string(Src, Bs0),
            {ok, 'Elixir.Kernel':inspect(V, [{pretty, true}]), Bs1}
        end
    end
  catch C:R:St -> {error, io_lib:format("** exception ~tp: ~tP~n    ~tP", [C, R, 30, St, 20]), Bs0}
  end,
  Cap ! {beamgate_done, self()},
  Out = receive {beamgate_out, O} -> O after 5000 -> <<>> end,
  case Res of
    more -> Parent ! {beamgate_shell, more};
    {Tag, Printed, Bs} ->
      NewB = term_to_binary(Bs),
      KeepB = if byte_size(NewB) =< 4194304 -> NewB; true -> B end,
      Parent ! {beamgate_shell, Tag, unicode:characters_to_binary(Printed), Out, KeepB}
  end.`

// liveShells tracks the open shells by grant id, so a revocation on this
// replica closes them at once.
type liveShells struct {
	mu sync.Mutex
	m  map[string]map[*shellRun]struct{}
}

type shellRun struct {
	cancel context.CancelCauseFunc
}

func (l *liveShells) add(grant string, r *shellRun) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]map[*shellRun]struct{}{}
	}
	if l.m[grant] == nil {
		l.m[grant] = map[*shellRun]struct{}{}
	}
	l.m[grant][r] = struct{}{}
}

func (l *liveShells) remove(grant string, r *shellRun) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m[grant], r)
	if len(l.m[grant]) == 0 {
		delete(l.m, grant)
	}
}

// endShells closes the live shells of grant and returns how many.
func (s *Server) endShells(grant, reason string) int {
	s.shells.mu.Lock()
	defer s.shells.mu.Unlock()
	n := 0
	for r := range s.shells.m[grant] {
		r.cancel(errors.New(reason))
		n++
	}
	return n
}

// shellEnded is the cause of a shell closed because its grant ended.
type shellEnded struct{ why string }

func (e shellEnded) Error() string { return e.why }

// runShell serves `shell NODE [--elixir]`.
func (s *Server) runShell(ctx ssh.Context, run context.Context, id *Identity, args []string, ch gossh.Channel, pty bool) uint32 {
	fail := func(reason string, r *policy.ShellRequest) uint32 {
		s.aud.Record(ctx, audit.After, s.shellRecord(ctx, id, audit.EventShellOpen, audit.DecisionDeny, reason, r))
		fmt.Fprintf(ch.Stderr(), "beamgate: shell: %s\r\n", s.localize(ctx, id, reason))
		return 1
	}
	pos, flags, err := shellArgs(args[1:])
	if err != nil || len(pos) != 1 {
		return fail("usage: ssh -t bastion shell NODE [--elixir]", nil)
	}
	cfg := s.conf()
	n := cfg.NodeByName(pos[0])
	if n == nil {
		return fail(fmt.Sprintf("%s is not a configured node (ssh bastion nodes lists yours)", pos[0]), nil)
	}
	b, err := s.loadShells(ctx)
	if err != nil {
		return fail(err.Error(), nil)
	}
	now := s.now()
	g := b.Grant(id.User, n.Name, now)
	if g == nil {
		why := fmt.Sprintf("you have no active break-glass grant on %s; ask for one with: ssh %s shell-request %s --reason TEXT", n.Name, s.sshTarget(ctx, id), n.Name)
		for _, r := range b.Select(func(r *policy.ShellRequest) bool { return r.User == id.User && r.Node == n.Name }) {
			switch st := r.State(now); st {
			case policy.ShellPending:
				why = fmt.Sprintf("your request %s on %s is still waiting for approval (%d of %d)", r.ID, n.Name, len(r.Approvals), r.Needed)
			case policy.ShellExpired, policy.ShellRevoked, policy.ShellDenied, policy.ShellCancelled:
				why = fmt.Sprintf("your grant %s on %s is %s; ask again with: ssh %s shell-request %s --reason TEXT", r.ID, n.Name, st, s.sshTarget(ctx, id), n.Name)
			}
		}
		return fail(why, nil)
	}
	if !pty {
		return fail("the shell needs a terminal: run ssh -t", g)
	}
	lang := term.Atom("erlang")
	if flags["elixir"] != "" {
		lang = "elixir"
	}

	sctx, cancel := context.WithCancelCause(run)
	defer cancel(nil)
	me := &shellRun{cancel: cancel}
	s.shells.add(g.ID, me)
	defer s.shells.remove(g.ID, me)
	// The grant's end, here or on another replica.
	go func() {
		t := time.NewTicker(shellGrantCheck)
		defer t.Stop()
		for {
			left := g.Expires.Sub(s.now())
			if left <= 0 {
				cancel(shellEnded{"your grant " + g.ID + " expired at " + g.Expires.UTC().Format(time.RFC3339)})
				return
			}
			select {
			case <-sctx.Done():
				return
			case <-time.After(min(left, shellGrantCheck)):
			case <-t.C:
				if b, err := s.loadShells(sctx); err == nil {
					if r, err := b.Find(g.ID); err == nil && r.State(s.now()) != policy.ShellActive {
						cancel(shellEnded{"your grant " + g.ID + " is " + string(r.State(s.now()))})
						return
					}
				}
			}
		}
	}()

	conn, cookiesUsed, err := s.shellConn(sctx, n)
	if err != nil {
		return fail(err.Error(), g)
	}
	defer conn.Close()
	driver, err := shellDriverForms(sctx, conn)
	if err != nil {
		return fail("starting the shell on "+n.Name+": "+err.Error(), g)
	}
	open := s.shellRecord(ctx, id, audit.EventShellOpen, audit.DecisionAllow, g.Reason, g)
	open.Detail["lang"] = string(lang)
	if err := s.aud.Record(ctx, audit.Gate, open); err != nil {
		fmt.Fprintln(ch.Stderr(), auditUnavailable)
		return 1
	}

	t := xterm.NewTerminal(ch, "")
	fmt.Fprintf(t, "beamgate break-glass shell on %s (grant %s, until %s). Every expression is recorded before it runs.\r\n",
		n.Name, g.ID, g.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintf(t, "End an expression with . (Erlang) or a newline (Elixir); Ctrl-C or Ctrl-D leaves. Reviewers replay it with: beamgate audit replay %s\r\n", sessionOf(ctx))
	// The reader reads one line per prompt it is given, so each prompt
	// shows the expression number the loop is at.
	lines := make(chan string)
	readErr := make(chan error, 1)
	ask := make(chan string)
	go func() {
		for {
			var p string
			select {
			case p = <-ask:
			case <-sctx.Done():
				return
			}
			t.SetPrompt(p)
			l, err := t.ReadLine()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case lines <- l:
			case <-sctx.Done():
				return
			}
		}
	}()
	bindings := term.Binary(emptyBindings)
	var src strings.Builder
	seq, outTotal := 0, 0
	endWith := func(why string) uint32 {
		fmt.Fprintf(t, "\r\nbeamgate: %s; the shell is closed.\r\n", why)
		cl := s.shellRecord(ctx, id, audit.EventShellClose, audit.DecisionInfo, why, g)
		cl.Detail["expressions"] = strconv.Itoa(seq)
		s.aud.Record(ctx, audit.After, cl)
		return 0
	}
	for {
		prompt := fmt.Sprintf("(%s)%d> ", n.Name, seq+1)
		if src.Len() > 0 {
			prompt = strings.Repeat(" ", len(prompt)-3) + ".. "
		}
		select {
		case ask <- prompt:
		case <-sctx.Done():
		case <-readErr:
			return endWith("you left")
		}
		var line string
		select {
		case <-sctx.Done():
			// A grant's end or a revocation says why; the channel or the
			// connection closing is a plain cancel.
			if c := context.Cause(sctx); c != nil && !errors.Is(c, context.Canceled) {
				return endWith(c.Error())
			}
			return endWith("the connection ended")
		case <-readErr:
			return endWith("you left")
		case line = <-lines:
		}
		if src.Len()+len(line) > maxShellExpr {
			fmt.Fprintf(t, "beamgate: the expression is over %d bytes; it is dropped.\r\n", maxShellExpr)
			src.Reset()
			continue
		}
		if src.Len() == 0 && strings.TrimSpace(line) == "" {
			continue
		}
		src.WriteString(line)
		src.WriteString("\n")
		text := src.String()
		if !utf8.ValidString(text) {
			fmt.Fprintf(t, "beamgate: the expression is not UTF-8; it is dropped.\r\n")
			src.Reset()
			continue
		}
		// Complete? An Erlang expression ends with a dot (checked here);
		// for Elixir the driver answers more, before evaluating anything.
		if lang == "erlang" && !erlangComplete(text) {
			continue
		}
		// Still active? (a revocation on another replica, or expiry)
		if b, err := s.loadShells(sctx); err != nil {
			return endWith("the break-glass store cannot be read (" + err.Error() + "); nothing more runs")
		} else if r, err := b.Find(g.ID); err != nil || r.State(s.now()) != policy.ShellActive {
			return endWith("your grant " + g.ID + " is no longer active")
		}
		in := s.shellRecord(ctx, id, audit.EventShellInput, audit.DecisionAllowWrite, "", g)
		in.Args = text
		in.Detail["seq"] = strconv.Itoa(seq + 1)
		if err := s.aud.Record(ctx, audit.Gate, in); err != nil {
			fmt.Fprintf(t, "beamgate: %s\r\n", auditUnavailable)
			src.Reset()
			continue
		}
		src.Reset()
		seq++
		res, err := s.shellEval(sctx, conn, driver, text, lang, bindings)
		if err != nil {
			if sctx.Err() != nil {
				continue // the select above says why
			}
			return endWith("the connection to " + n.Name + " failed: " + err.Error())
		}
		if res.more {
			src.WriteString(text) // Elixir: keep reading
			seq--
			continue
		}
		bindings = res.bindings
		// The production cookie is not shown, nor recorded, even to a
		// granted shell (erlang:get_cookie()). A shell can still run code
		// that hides it: rotate the cluster's cookie after a break-glass.
		shown := scrubCookies(res.output+res.printed+"\n", cookiesUsed)
		t.Write([]byte(strings.ReplaceAll(shown, "\n", "\r\n")))
		if outTotal < maxShellOutTotal {
			o := s.shellRecord(ctx, id, audit.EventShellOutput, audit.DecisionInfo, "", g)
			o.Detail["seq"] = strconv.Itoa(seq)
			if res.failed {
				o.Detail["error"] = "true"
			}
			kept := shown
			if len(kept) > maxShellOutRecord {
				kept = kept[:maxShellOutRecord] + "…(cut)"
				o.Detail["cut"] = "true"
			}
			outTotal += len(kept)
			if outTotal >= maxShellOutTotal {
				o.Detail["cap"] = "the shell's output cap is reached; later output is not recorded"
			}
			o.Args = kept
			s.aud.Record(ctx, audit.After, o)
		}
	}
}

// erlangComplete reports whether text holds a complete Erlang expression
// sequence: it ends with a dot outside strings, quoted atoms and
// comments. (Production's scanner decides for real; this only decides
// when to send.)
func erlangComplete(text string) bool {
	inStr, inAtom, last := false, false, rune(0)
	for i := 0; i < len(text); i++ {
		c := rune(text[i])
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		case inAtom:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inAtom = false
			}
			continue
		case c == '%':
			for i < len(text) && text[i] != '\n' {
				i++
			}
			continue
		case c == '$':
			i++ // a character literal, e.g. $. or $"
			last = 'a'
			continue
		case c == '"':
			inStr = true
		case c == '\'':
			inAtom = true
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			last = c
		}
	}
	return !inStr && !inAtom && last == '.'
}

// emptyBindings is term_to_binary([]).
var emptyBindings = []byte{131, 106}

type shellResult struct {
	more     bool
	failed   bool
	printed  string
	output   string
	bindings term.Binary
}

// shellEval runs one expression through the driver.
func (s *Server) shellEval(ctx context.Context, c *client.Conn, driver term.Term, src string, lang term.Atom, b term.Binary) (*shellResult, error) {
	ctx, cancel := context.WithTimeout(ctx, shellEvalTimeout)
	defer cancel()
	self := c.NewSelf()
	bs := term.MakeList(
		term.Tuple{term.Atom("B"), b},
		term.Tuple{term.Atom("Lang"), lang},
		term.Tuple{term.Atom("Parent"), self},
		term.Tuple{term.Atom("Src"), term.Binary(src)},
	)
	mb, err := c.Spawn(ctx, self, "erl_eval", "exprs", []term.Term{driver, bs}, client.SpawnOptions{Monitor: true, MaxBytes: 8 << 20})
	if err != nil {
		return nil, err
	}
	defer mb.Close()
	for {
		m, err := mb.Receive(ctx)
		if err != nil {
			return nil, err
		}
		t, ok := m.(term.Tuple)
		if !ok || len(t) < 2 || t[0] != term.Atom("beamgate_shell") {
			continue
		}
		if len(t) == 2 {
			return &shellResult{more: true}, nil
		}
		if len(t) != 5 {
			return nil, errors.New("a malformed reply from the shell driver")
		}
		r := &shellResult{failed: t[1] == term.Atom("error")}
		r.printed = binText(t[2])
		r.output = binText(t[3])
		r.bindings, _ = t[4].(term.Binary)
		if r.bindings == nil {
			r.bindings = b
		}
		return r, nil
	}
}

func binText(t term.Term) string {
	if b, ok := t.(term.Binary); ok {
		return string(b)
	}
	return ""
}

// shellDriverForms parses shellDriver on production (erl_scan, erl_parse)
// and returns its abstract form list, to pass to erl_eval:exprs.
func shellDriverForms(ctx context.Context, c *client.Conn) (term.Term, error) {
	toks, err := c.Call(ctx, "erl_scan", "string", []term.Term{term.String(shellDriver)})
	if err != nil {
		return nil, err
	}
	tt, ok := toks.(term.Tuple)
	if !ok || len(tt) != 3 || tt[0] != term.Atom("ok") {
		return nil, fmt.Errorf("scanning the driver: %s", term.Format(toks, 200))
	}
	forms, err := c.Call(ctx, "erl_parse", "parse_exprs", []term.Term{tt[1]})
	if err != nil {
		return nil, err
	}
	ft, ok := forms.(term.Tuple)
	if !ok || len(ft) != 2 || ft[0] != term.Atom("ok") {
		return nil, fmt.Errorf("parsing the driver: %s", term.Format(forms, 200))
	}
	return ft[1], nil
}

// shellConn opens the hidden-node connection a shell runs over
// (dialProduction), and returns every production cookie of the cluster,
// to scrub from what the shell shows.
func (s *Server) shellConn(ctx context.Context, n *config.Node) (*client.Conn, []string, error) {
	if s.opts.Cookies == nil {
		return nil, nil, errors.New("the gateway has no production cookie store for shells")
	}
	var used []string
	c, err := dialProduction(ctx, s.opts.Cookies, n, hiddenNodeName("beamgate_shell_", s.opts.ViewHost), &used)
	if err != nil {
		s.log.Info("break-glass shell: connecting failed", zap.String("node", n.Name), zap.String("error", err.Error()))
		return nil, nil, err
	}
	// The cluster's other cookie too, in case the shell shows it.
	if cur, err := s.opts.Cookies.ProductionCookie(ctx, n.Cluster, false); err == nil {
		used = append(used, cur)
	}
	if prev, err := s.opts.Cookies.PreviousProductionCookie(ctx, n.Cluster); err == nil && prev != "" {
		used = append(used, prev)
	}
	return c, used, nil
}
