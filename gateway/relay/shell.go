package relay

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"beamgate/audit"
	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
	"beamgate/policy"
)

// A stock remote shell (erl -remsh, ^G r) under a break-glass grant: the
// policy admits the shell's start once the gateway confirms a grant
// (Engineer.ShellGrant); from then on the session records what the shell
// reads (the engineer's io_replies, each on disk before it is forwarded)
// and prints (production's put_chars), and ends at the grant's expiry or
// revocation. The grant opens the shell only: every other message is
// decided by the policy as before.

// ShellGrant is an active break-glass grant.
type ShellGrant struct {
	ID      string
	Expires time.Time
}

// Bounds of a recorded remote shell.
const (
	maxShellRecord   = 4 << 10 // bytes of text per record
	maxShellRecorded = 1 << 20 // bytes of output recorded per session
	shellCheckEvery  = 2 * time.Second
)

// remoteShell is a session's recording state.
type remoteShell struct {
	grant    ShellGrant
	scrub    []string // the cluster's production cookies: never in a record
	mu       sync.Mutex
	recorded int // output bytes recorded
	inputs   int
}

// admitShell asks the gateway for a grant when the policy refused a
// remote shell, and admits it if there is one: it reports whether the
// message should be decided again.
func (s *session) admitShell(ctx context.Context, d policy.Decision) bool {
	if d.Rule != policy.RemoteShellRule || s.eng.ShellGrant == nil || s.shell.Load() != nil {
		return false
	}
	g, ok := s.eng.ShellGrant(s.target.Name)
	if !ok {
		return false
	}
	rs := &remoteShell{grant: g}
	// A shell can print the production cookie (erlang:get_cookie()); the
	// records never carry it.
	if c, err := s.r.cfg.Cookies.ProductionCookie(ctx, s.target.Cluster, false); err == nil && c != "" {
		rs.scrub = append(rs.scrub, c)
	}
	if c, err := s.r.cfg.Cookies.PreviousProductionCookie(ctx, s.target.Cluster); err == nil && c != "" {
		rs.scrub = append(rs.scrub, c)
	}
	rec := s.record(audit.EventShellOpen, audit.DecisionAllow, policy.ShellRule, "a stock remote shell under break-glass grant "+g.ID)
	rec.Detail = map[string]string{"request": g.ID, "expires": g.Expires.UTC().Format(time.RFC3339), "via": "remsh"}
	if err := s.r.aud.Record(ctx, audit.Gate, rec); err != nil {
		return false
	}
	s.shell.Store(rs)
	s.pol.SetShellGrant(g.ID)
	go s.watchShell(ctx, rs)
	return true
}

// watchShell ends the session at the grant's expiry, or when the gateway
// no longer confirms it (revoked, on this replica or another).
func (s *session) watchShell(ctx context.Context, rs *remoteShell) {
	t := time.NewTicker(shellCheckEvery)
	defer t.Stop()
	for {
		left := time.Until(rs.grant.Expires)
		if left <= 0 {
			s.cancel(&EndError{Reason: "break-glass grant " + rs.grant.ID + " expired; the remote shell is closed"})
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(left):
		case <-t.C:
			if g, ok := s.eng.ShellGrant(s.target.Name); !ok || g.ID != rs.grant.ID {
				s.cancel(&EndError{Reason: "break-glass grant " + rs.grant.ID + " is no longer active; the remote shell is closed"})
				return
			}
		}
	}
}

// recordShellInput writes what the engineer's group answers the remote
// shell (an io_reply: the line or the scanned expression) as shell_input,
// before it is forwarded. It returns the audit error, which ends the
// session.
func (s *session) recordShellInput(ctx context.Context, m dist.Message) error {
	rs := s.shell.Load()
	if rs == nil {
		return nil
	}
	t, ok := m.Payload.(term.Tuple)
	if !ok || len(t) != 3 || t[0] != term.Atom("io_reply") {
		return nil
	}
	text, ok := inputText(t[2])
	if !ok {
		return nil // a getopts, geometry or other answer, not input
	}
	rs.mu.Lock()
	rs.inputs++
	n := rs.inputs
	rs.mu.Unlock()
	rec := s.record(audit.EventShellInput, audit.DecisionAllowWrite, policy.ShellRule, "")
	rec.Args = rs.clean(text)
	rec.Detail = map[string]string{"request": rs.grant.ID, "seq": strconv.Itoa(n), "via": "remsh"}
	return s.r.aud.Record(ctx, audit.Gate, rec)
}

// recordShellOutput writes what production's shell asks the engineer's
// group to print (put_chars) as shell_output, bounded per session.
func (s *session) recordShellOutput(ctx context.Context, ctrl dist.Control, payload []byte) {
	rs := s.shell.Load()
	if rs == nil {
		return
	}
	switch ctrl.(type) {
	case *dist.Send, *dist.SendSender:
	default:
		return
	}
	v, _, err := term.Decode(payload, &term.Limits{MaxDepth: 64, MaxElements: 1 << 16, MaxAtomLen: 255, MaxBinary: 1 << 20, MaxBigBytes: 64})
	if err != nil || !term.IsTagged(v, "io_request", 4) {
		return
	}
	text := putChars(v.(term.Tuple)[3])
	if text == "" {
		return
	}
	rs.mu.Lock()
	if rs.recorded >= maxShellRecorded {
		rs.mu.Unlock()
		return
	}
	rs.recorded += len(text)
	capped := rs.recorded >= maxShellRecorded
	rs.mu.Unlock()
	rec := s.record(audit.EventShellOutput, audit.DecisionInfo, policy.ShellRule, "")
	rec.Args = rs.clean(text)
	rec.Detail = map[string]string{"request": rs.grant.ID, "via": "remsh"}
	if capped {
		rec.Detail["cap"] = "the shell's output cap is reached; later output is not recorded"
	}
	s.r.aud.Record(ctx, audit.After, rec)
}

// putChars is what an io request prints: put_chars, or the put_chars of
// {requests, [...]} (how the Erlang shell prints results).
func putChars(req term.Term) string {
	rt, ok := req.(term.Tuple)
	if !ok || len(rt) < 2 {
		return ""
	}
	switch {
	case rt[0] == term.Atom("requests") && len(rt) == 2:
		reqs, _ := term.ListElems(rt[1])
		var b strings.Builder
		for _, r := range reqs {
			b.WriteString(putChars(r))
		}
		return b.String()
	case rt[0] != term.Atom("put_chars"):
		return ""
	case len(rt) == 2:
		return shellText(rt[1])
	case len(rt) == 3:
		return shellText(rt[2])
	}
	return term.Format(req, maxShellRecord) // {put_chars, Enc, M, F, A}: what it formats
}

// closeShell records the end of a recorded remote shell.
func (s *session) closeShell(ctx context.Context, reason string) {
	rs := s.shell.Load()
	if rs == nil {
		return
	}
	rec := s.record(audit.EventShellClose, audit.DecisionInfo, policy.ShellRule, reason)
	rs.mu.Lock()
	rec.Detail = map[string]string{"request": rs.grant.ID, "expressions": strconv.Itoa(rs.inputs), "via": "remsh"}
	rs.mu.Unlock()
	s.r.aud.Record(ctx, audit.After, rec)
}

// clean is text as a record may carry it: without the production
// cookie, bounded.
func (rs *remoteShell) clean(text string) string {
	for _, c := range rs.scrub {
		text = strings.ReplaceAll(text, c, "[cookie]")
	}
	return bound(text)
}

func bound(s string) string {
	if len(s) > maxShellRecord {
		return s[:maxShellRecord] + "…(cut)"
	}
	return s
}

// inputText is the engineer's input in an io_reply: a line (get_line) or
// a scanned expression (get_until with erl_scan, {ok, Tokens, EndLine}).
func inputText(t term.Term) (string, bool) {
	switch v := t.(type) {
	case term.Binary, term.String:
		return shellText(v), true
	case term.List:
		return charList(v)
	case term.Tuple:
		if len(v) == 3 && v[0] == term.Atom("ok") {
			if toks, ok := term.ListElems(v[1]); ok {
				return renderTokens(toks), true
			}
		}
		// IEx 1.15+ on OTP 26+ reads with its own get_until function,
		// run by the engineer's group: the reply is {ok, Fun, _}, a
		// closure over the parsed expression. Record what it closes over
		// (the expression as Elixir's AST), which is what will run.
		var fun *term.Fun
		term.Walk(v, func(t term.Term) bool {
			if f, ok := t.(term.Fun); ok && fun == nil {
				fun = &f
				return false
			}
			return fun == nil
		})
		if fun != nil {
			return "(parsed on the engineer's node; what it closes over:) " + term.Format(term.MakeList(fun.Free...), maxShellRecord), true
		}
		// Otherwise the text it carries.
		var parts []string
		term.Walk(v, func(t term.Term) bool {
			switch c := t.(type) {
			case term.Binary:
				parts = append(parts, string(c))
				return false
			case term.String:
				parts = append(parts, string(c))
				return false
			case term.List:
				if s, ok := charList(c); ok && s != "" {
					parts = append(parts, s)
					return false
				}
			}
			return true
		})
		if len(parts) > 0 {
			return strings.Join(parts, " "), true
		}
	}
	return "", false
}

// shellText renders what a shell reads or prints: chardata as text, an
// erl_scan token list ({ok, Tokens, EndLine}, what io:scan_erl_exprs
// returns) as source, anything else as a bounded term.
func shellText(t term.Term) string {
	switch v := t.(type) {
	case term.Binary:
		return string(v)
	case term.String:
		return string(v)
	case term.Atom:
		if v == "eof" {
			return ""
		}
	case term.Tuple:
		if len(v) == 3 && v[0] == term.Atom("ok") {
			if toks, ok := term.ListElems(v[1]); ok {
				return renderTokens(toks)
			}
		}
	case term.List:
		if s, ok := charList(v); ok {
			return s
		}
	}
	return term.Format(t, maxShellRecord)
}

func charList(l term.List) (string, bool) {
	var b strings.Builder
	for _, e := range l.Elems {
		switch c := e.(type) {
		case term.Int:
			if c < 0 || c > 0x10ffff {
				return "", false
			}
			b.WriteRune(rune(c))
		case term.Binary:
			b.Write(c)
		case term.String:
			b.Write(c)
		default:
			return "", false
		}
	}
	return b.String(), true
}

// renderTokens turns erl_scan tokens back into source text, near enough
// for a reader: {Category, Anno, Value} and {Symbol, Anno}.
func renderTokens(toks []term.Term) string {
	var parts []string
	for _, tk := range toks {
		t, ok := tk.(term.Tuple)
		if !ok || len(t) < 2 {
			continue
		}
		cat, _ := t[0].(term.Atom)
		if len(t) == 2 {
			if cat == "dot" {
				parts = append(parts, ".")
			} else {
				parts = append(parts, string(cat))
			}
			continue
		}
		switch cat {
		case "string":
			s, _ := shellValue(t[2])
			parts = append(parts, strconv.Quote(s))
		case "char":
			if c, ok := t[2].(term.Int); ok {
				parts = append(parts, "$"+string(rune(c)))
			}
		case "atom":
			a, _ := t[2].(term.Atom)
			parts = append(parts, term.Format(a, 300)) // quoted where Erlang needs it
		default:
			s, _ := shellValue(t[2])
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

func shellValue(t term.Term) (string, bool) {
	switch v := t.(type) {
	case term.Atom:
		return string(v), true
	case term.Int:
		return strconv.FormatInt(int64(v), 10), true
	case term.String:
		return string(v), true
	case term.List:
		return charList(v)
	}
	return term.Format(t, 256), true
}
