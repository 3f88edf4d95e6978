package policy

import (
	"strings"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

// Remote shells (erl -remsh, iex --remsh, ^G r) are refused, as the
// remote-shell rule says; this file makes the refusal fail fast, with a
// notice naming the rule, instead of a hang or a crash report naming an
// internal call. What each release sends (docs/wire.md#remote-shells):
//
//   - OTP 26+ erl -remsh and Elixir 1.15+ iex --remsh: user_drv first
//     calls erpc code:ensure_loaded(shell | iex); {error, Reason} makes it
//     print "Could not load ..." and halt(1).
//   - Elixir 1.14 iex --remsh: rpc:call(N, code, ensure_loaded,
//     ['Elixir.IEx']); {badrpc, Reason} makes IEx print it and exit 1.
//   - OTP 25 erl -remsh (and ^G r on every release): the group process
//     calls rpc:call(N, shell, start, []) as its own group leader. A
//     stand-in shell prints the notice through the group and exits; the
//     group then ends, and OTP 25's user_drv would wait for ^G, so the
//     gateway asks the engineer's init whether this VM was started with
//     -remsh for this node, and only then stops it.

// ShellRule is the rule of a remote shell admitted by a break-glass grant.
const ShellRule = "break-glass.shell"

// RemoteShellRule is the rule of a refused remote shell.
const RemoteShellRule = "remote-shell"

// RemoteShellNotice is what a refused remote shell prints on the
// engineer's terminal.
const RemoteShellNotice = "beamgate: remote shells are not allowed through beamgate (rule remote-shell): " +
	"use observer, rpc:call of a read, or the views (ssh bastion top, info, apps, stats); ssh bastion why explains. " +
	"For a change, ask for a recorded break-glass shell: ssh bastion shell-request NODE --reason TEXT\n"

// remoteShellStart recognises the first call of a remote shell: "load"
// (code:ensure_loaded of shell, iex or 'Elixir.IEx') or "start"
// (shell:start/0 from a process that is its own group leader: group.erl's
// start_shell). "" otherwise.
func remoteShellStart(c *dist.SpawnRequest, args []term.Term) string {
	mod, _ := args[1].(term.Atom)
	fun, _ := args[2].(term.Atom)
	argv, ok := term.ListElems(args[3])
	if !ok {
		return ""
	}
	switch {
	case mod == "code" && fun == "ensure_loaded" && len(argv) == 1:
		if a, _ := argv[0].(term.Atom); a == "shell" || a == "iex" || a == "Elixir.IEx" {
			return "load"
		}
	case mod == "shell" && fun == "start" && len(argv) == 0 && c.From == c.GroupLeader:
		return "start"
	}
	return ""
}

// remoteShell refuses a remote shell's first call, in every mode, with
// the answer that makes the engineer's release print RemoteShellNotice
// and end.
func (s *Session) remoteShell(m dist.Message, c *dist.SpawnRequest, args []term.Term) Decision {
	mod, _ := args[1].(term.Atom)
	fun, _ := args[2].(term.Atom)
	argv, _ := term.ListElems(args[3])
	if s.shell != "" {
		// Under a break-glass grant: the shell's start is forwarded, and
		// what it returns (the remote shell's pid) becomes the session's,
		// so the group may link to it, interrupt it and answer its I/O.
		return Decision{Verdict: Allow, Rule: ShellRule, Reason: "break-glass grant " + s.shell, What: mfaText(mod, fun, len(argv)), args: args[3], grant: true}
	}
	const rule, reason = "remote-shell", "remote shells run arbitrary code; use the audited views instead"
	d := Decision{Verdict: Deny, Rule: rule, Reason: reason, What: mfaText(mod, fun, len(argv)), args: args[3]}
	d.Answer = s.answerFor(m, rule, reason)
	d.Answer.Notice = RemoteShellNotice
	switch remoteShellStart(c, args) {
	case "load":
		tag := term.Atom("error") // user_drv: {error, R} -> "Could not load", halt(1)
		if argv[0] == term.Atom("Elixir.IEx") {
			tag = "badrpc" // IEx.CLI (Elixir <= 1.14) checks rpc:call's {badrpc, R}
		}
		d.Answer.Kind, d.Answer.Value = AnswerErpcReturn, term.Tuple{tag, term.Atom("beamgate_denied")}
	case "start":
		d.Answer.Kind, d.Answer.GroupLeader, d.Answer.ProbeRemsh = AnswerStandInShell, c.GroupLeader, true
		s.probe = true
	}
	return d
}

// NoteStandIn tells the session about a stand-in pid the relay made for a
// refused remote shell: what the engineer's node sends it (a link, the
// group's exit) is dropped under remote-shell.stand_in, not refused as a
// state change.
func (s *Session) NoteStandIn(p term.Pid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isProd(p) && len(s.standIn) < 64 {
		s.standIn[pidKey{p.ID, p.Serial}] = struct{}{}
	}
}

// toStandIn decides a message or signal to a stand-in, and the engineer's
// init's answer to the remsh probe.
func (s *Session) toStandIn(m dist.Message, to term.Pid) (Decision, bool) {
	if !s.has(s.standIn, to) {
		return Decision{}, false
	}
	d := Decision{Verdict: Deny, Rule: "remote-shell.stand_in", Reason: "to the gateway's stand-in for a refused remote shell; nothing reaches production", What: termText(to)}
	if s.probe && term.IsTagged(m.Payload, "init", 2) {
		s.probe = false
		d.Rule, d.Reason = "remote-shell.probe", "the engineer's init answered whether it was started with -remsh"
		if s.startedForRemsh(m.Payload.(term.Tuple)[1]) {
			d.Answer.Stop = true
			d.Reason = "the engineer's VM was started with -remsh for this node: the gateway stops it"
		}
	}
	return d, true
}

// startedForRemsh reports whether init's {ok, [[Node]]} names this
// session's production node (or its alive part, as -remsh accepts).
func (s *Session) startedForRemsh(reply term.Term) bool {
	tp, ok := reply.(term.Tuple)
	if !ok || len(tp) != 2 || tp[0] != term.Atom("ok") {
		return false
	}
	outer, ok := term.ListElems(tp[1])
	if !ok || len(outer) != 1 {
		return false
	}
	inner, ok := term.ListElems(outer[0])
	if !ok || len(inner) != 1 {
		return false
	}
	name, ok := stringOf(inner[0])
	if !ok {
		return false
	}
	prod := string(s.production)
	alive, _, _ := strings.Cut(prod, "@")
	return name == prod || name == alive
}

// stringOf reads an Erlang string (a list of character codes, or the
// STRING_EXT form).
func stringOf(t term.Term) (string, bool) {
	switch v := t.(type) {
	case term.String:
		return string(v), true
	case term.List:
		var b strings.Builder
		for _, e := range v.Elems {
			c, ok := e.(term.Int)
			if !ok || c < 0 || c > 0x10ffff || b.Len() > 255 {
				return "", false
			}
			b.WriteRune(rune(c))
		}
		return b.String(), true
	}
	return "", false
}

// shellStartup recognises the reads OTP 26+'s user_drv makes on the
// remote node before it starts a remote shell there: the net tick time
// and the shell slogan (application:get_env(stdlib, shell_slogan, _),
// which the secrets rule refuses otherwise). Only under a grant.
func shellStartup(args []term.Term) bool {
	mod, _ := args[1].(term.Atom)
	fun, _ := args[2].(term.Atom)
	argv, ok := term.ListElems(args[3])
	if !ok {
		return false
	}
	switch {
	case mod == "net_kernel" && fun == "get_net_ticktime" && len(argv) == 0:
		return true
	case mod == "application" && fun == "get_env" && len(argv) == 3:
		return argv[0] == term.Atom("stdlib") && argv[1] == term.Atom("shell_slogan")
	case mod == "erlang" && fun == "system_info" && len(argv) == 1:
		return argv[0] == term.Atom("system_version")
	}
	return false
}
