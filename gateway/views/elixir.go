package views

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"beamgate/gateway/dist/term"
)

// Elixir style. Views build their results in Erlang's forms (<0.50.0>,
// 'Elixir.Foo.Bar' printed as Elixir.Foo.Bar, gen_server:loop/7); on an
// Elixir node, or with --elixir, Run and RunCluster rewrite the string
// fields that name a process, a module or an atom into the forms iex
// prints, after the view has returned and before it is rendered, so the
// text table and the JSON say the same thing. ElixirStyle lists the
// fields.

// detectModule, detectFunction: an Elixir node has Elixir's Kernel loaded
// (iex, releases, mix run all load it); erlang:function_exported/3 is a
// BIF that only reads the export table.
const (
	detectModule   = term.Atom("Elixir.Kernel")
	detectFunction = term.Atom("__info__")
)

// DetectElixir reports whether the node behind c runs Elixir: one call of
// erlang:function_exported('Elixir.Kernel', '__info__', 1) (allowed by
// the readonly profile's system.stats rule). On an Erlang node the call
// creates the atoms 'Elixir.Kernel' and '__info__' once, and spends two
// atoms of the session's atom budget; --erlang and --elixir skip it.
func DetectElixir(ctx context.Context, c Caller) (bool, error) {
	reply, err := c.Call(ctx, "erlang", "function_exported", []term.Term{detectModule, detectFunction, term.Int(1)})
	if err != nil {
		return false, err
	}
	switch reply {
	case term.True:
		return true, nil
	case term.False:
		return false, nil
	}
	return false, badReply("erlang:function_exported/3", reply)
}

// styleMode is what the flags say about the style.
type styleMode int

const (
	styleAuto   styleMode = iota // detect, once per node per Run
	styleErlang                  // --erlang
	styleElixir                  // --elixir
)

// styler decides the style of one Run or RunCluster: fixed by a flag, or
// detected once per node (member index) and remembered for the rest of
// the run, so a --watch asks once. A detection that fails (refused by the
// policy, say) means Erlang style, and is not retried.
type styler struct {
	mode  styleMode
	mu    sync.Mutex
	known map[int]bool
}

func newStyler(mode styleMode) *styler { return &styler{mode: mode, known: map[int]bool{}} }

// elixir reports whether node i (behind c) is shown in Elixir style.
func (s *styler) elixir(ctx context.Context, i int, c Caller) bool {
	switch s.mode {
	case styleErlang:
		return false
	case styleElixir:
		return true
	}
	s.mu.Lock()
	v, ok := s.known[i]
	s.mu.Unlock()
	if ok {
		return v
	}
	v, _ = DetectElixir(ctx, c) // an error or a refusal: Erlang style
	if ctx.Err() == nil {
		s.mu.Lock()
		s.known[i] = v
		s.mu.Unlock()
	}
	return v
}

// ElixirStyle rewrites r in place into the forms iex prints and returns
// it. It takes a result in Erlang form, as a view returns it, and must be
// applied once. What changes:
//
//   - pids: <0.50.0> becomes #PID<0.50.0> (every pid field: pid, owner,
//     group_leader, links, monitored_by, monitors, an application's master
//     and supervisor, a child's pid);
//   - registered names, ETS table names and owner names, a top
//     supervisor's name: Elixir.Foo.Bar becomes Foo.Bar, other atoms
//     :name (quoted, :"my-name", when they are not identifiers; nil, true
//     and false stay bare);
//   - functions (initial_call, current_function, stack frames, and the
//     NAME OR INITIAL CALL column of top and binaries when it holds a
//     call, that is text of the form m:f/N; otherwise it is a name):
//     gen_server:loop/7 becomes :gen_server.loop/7, Elixir.Foo:bar/2
//     Foo.bar/2, a fun's '-bar/2-fun-0-' anonymous fn/N in Foo.bar/2;
//   - a monitor of {Name, Node}: {:name, :"node@host"};
//   - an ETS table's reference: #Ref<0.1.2.3> becomes #Reference<0.1.2.3>;
//   - supervisor child ids that print as an identifier or an Elixir
//     alias (as names above; other ids, such as tuples or atoms that need
//     quotes, stay in Erlang syntax), and the not-running paths built
//     from them.
//
// What does not change: node names, application names, numbers, and the
// enumerated values (status, priority, ETS type and protection, child
// type, restart and state, memory types, the ranking key). Stats has no
// field that changes. ClusterResult's rows change as their single-node
// rows do.
func ElixirStyle(r Result) Result {
	switch v := r.(type) {
	case *TopResult:
		if v != nil {
			for i := range v.Rows {
				exProcRow(&v.Rows[i])
			}
		}
	case *BinariesResult:
		if v != nil {
			for i := range v.Rows {
				exBinRow(&v.Rows[i])
			}
		}
	case *ETSResult:
		if v != nil {
			for i := range v.Rows {
				exTableRow(&v.Rows[i])
			}
		}
	case *ProcInfo:
		if v != nil {
			exProcInfo(v)
		}
	case *AppsResult:
		if v != nil {
			for i := range v.Apps {
				exApp(&v.Apps[i])
			}
		}
	case *ClusterResult:
		if v == nil {
			break
		}
		switch rows := v.Rows.(type) {
		case []ClusterProcRow:
			for i := range rows {
				exProcRow(&rows[i].ProcRow)
			}
		case []ClusterTableRow:
			for i := range rows {
				exTableRow(&rows[i].TableRow)
			}
		case []ClusterBinRow:
			for i := range rows {
				exBinRow(&rows[i].BinRow)
			}
		}
	}
	return r
}

func exProcRow(r *ProcRow) {
	r.Pid, r.Name, r.CurrentFunction = exPid(r.Pid), exNameOrCall(r.Name), exMFA(r.CurrentFunction)
}

func exBinRow(r *BinRow) {
	r.Pid, r.Name, r.CurrentFunction = exPid(r.Pid), exNameOrCall(r.Name), exMFA(r.CurrentFunction)
}

func exTableRow(r *TableRow) {
	r.Name, r.ID, r.Owner, r.OwnerName = exAtom(r.Name), exRef(r.ID), exPid(r.Owner), exAtom(r.OwnerName)
}

func exProcInfo(p *ProcInfo) {
	p.Pid, p.RegisteredName, p.GroupLeader = exPid(p.Pid), exAtom(p.RegisteredName), exPid(p.GroupLeader)
	p.InitialCall, p.CurrentFunction = exMFA(p.InitialCall), exMFA(p.CurrentFunction)
	each := func(l []string, f func(string) string) {
		for i := range l {
			l[i] = f(l[i])
		}
	}
	each(p.Links, exPid)
	each(p.MonitoredBy, exPid)
	each(p.Monitors, exMonitor)
	each(p.Stacktrace, exFrame)
}

func exApp(a *App) {
	a.Master, a.Supervisor, a.SupName = exPid(a.Master), exPid(a.Supervisor), exAtom(a.SupName)
	renamed := map[string]string{}
	exChildren(a.Children, a.Name, a.Name, renamed)
	for i, p := range a.NotRunning {
		if n, ok := renamed[p]; ok {
			a.NotRunning[i] = n
		}
	}
}

// exChildren rewrites a supervisor's children and records how each
// child's path (as collectNotRunning builds it) was renamed.
func exChildren(kids []AppChild, oldPath, newPath string, renamed map[string]string) {
	for i := range kids {
		k := &kids[i]
		op := oldPath + "/" + k.ID
		k.ID, k.Pid, k.Name = exTermAtom(k.ID), exPid(k.Pid), exAtom(k.Name)
		np := newPath + "/" + k.ID
		renamed[op] = np
		exChildren(k.Children, op, np, renamed)
	}
}

// maxPidText bounds the pid text exPid and isPidText look at.
const maxPidText = 40

// isPidText reports whether s is a pid as pidText prints it: <N.ID.S>.
func isPidText(s string) bool {
	if len(s) < 7 || len(s) > maxPidText || s[0] != '<' || s[len(s)-1] != '>' {
		return false
	}
	parts := strings.Split(s[1:len(s)-1], ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if !allDigits(p) {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// exPid prints a pid as iex does: <0.50.0> becomes #PID<0.50.0>. Other
// text (a port, "", anything else) is returned as it is.
func exPid(s string) string {
	if isPidText(s) {
		return "#PID" + s
	}
	return s
}

// exRef prints a reference as iex does: #Ref<0.1.2.3> becomes
// #Reference<0.1.2.3>.
func exRef(s string) string {
	if rest, ok := strings.CutPrefix(s, "#Ref<"); ok {
		return "#Reference<" + rest
	}
	return s
}

// exAtom prints the atom named a as an Elixir literal, as inspect/1
// does: an alias Elixir.Foo.Bar as Foo.Bar, an identifier as :name, nil,
// true and false bare, anything else quoted (:"my-name"). "" (no name) is
// returned as "".
func exAtom(a string) string {
	switch {
	case a == "":
		return ""
	case a == "nil" || a == "true" || a == "false":
		return a
	case isAlias(a):
		if a == "Elixir" {
			return a
		}
		return a[len("Elixir."):]
	case isAtomIdent(a):
		return ":" + a
	}
	return ":" + exQuote(a)
}

// exTermAtom is exAtom for text that is an atom's name only when it
// looks like one (an identifier such as vw_worker or Foo, or an Elixir
// alias), as termText prints a term that may or may not be an atom;
// other text (a tuple, a number, a string, an atom that would need
// quotes) stays in Erlang syntax.
func exTermAtom(s string) string {
	if isAlias(s) || isAtomIdent(s) {
		return exAtom(s)
	}
	return s
}

// exNameOrCall is for the NAME OR INITIAL CALL columns: a call (m:f/a)
// as exMFA prints it, anything else as a registered name.
func exNameOrCall(s string) string {
	if _, _, _, ok := splitMFA(s); ok {
		return exMFA(s)
	}
	return exAtom(s)
}

// exMFA prints m:f/a (as mfaText prints it) as Elixir does:
// :gen_server.loop/7, Foo.bar/2, Foo."odd name"/1, and the fun
// '-bar/2-fun-0-' of Foo, arity 1, as "anonymous fn/1 in Foo.bar/2".
// Text that is not a call is printed as exTermAtom does.
func exMFA(s string) string {
	m, f, a, ok := splitMFA(s)
	if !ok {
		return exTermAtom(s)
	}
	mod := exModule(m)
	if name, arity, ok := funName(f); ok {
		return "anonymous fn/" + a + " in " + mod + "." + exFun(name) + "/" + arity
	}
	return mod + "." + exFun(f) + "/" + a
}

// splitMFA splits "m:f/a" at the first ':' and the last '/'; the arity
// is a number of at most 3 digits.
func splitMFA(s string) (m, f, a string, ok bool) {
	slash := strings.LastIndexByte(s, '/')
	if slash < 0 {
		return "", "", "", false
	}
	a = s[slash+1:]
	if len(a) > 3 || !allDigits(a) {
		return "", "", "", false
	}
	m, f, ok = strings.Cut(s[:slash], ":")
	if !ok || m == "" || f == "" {
		return "", "", "", false
	}
	return m, f, a, true
}

// funName reads the name Erlang gives a fun, -name/arity-fun-N-, as the
// function it is in.
func funName(f string) (name, arity string, ok bool) {
	body, ok := strings.CutPrefix(f, "-")
	if !ok {
		return "", "", false
	}
	body, ok = strings.CutSuffix(body, "-")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(body, "-fun-")
	if i < 0 || !allDigits(body[i+len("-fun-"):]) {
		return "", "", false
	}
	slash := strings.LastIndexByte(body[:i], '/')
	if slash <= 0 || !allDigits(body[slash+1:i]) {
		return "", "", false
	}
	return body[:slash], body[slash+1 : i], true
}

// exModule prints a module as the left of an Elixir remote call: Foo.Bar
// for Elixir.Foo.Bar, :gen_server, :"my-mod".
func exModule(m string) string {
	if isAlias(m) && m != "Elixir" {
		return m[len("Elixir."):]
	}
	if isAtomIdent(m) {
		return ":" + m
	}
	return ":" + exQuote(m)
}

// exFun prints a function name as the right of an Elixir remote call:
// bare when it is an identifier, else quoted (Foo."odd name"/1).
func exFun(f string) string {
	if f != "" && (f[0] >= 'a' && f[0] <= 'z' || f[0] == '_') && isIdentRest(f[1:], false) {
		return f
	}
	return exQuote(f)
}

// isAlias reports whether a is an Elixir alias's atom: Elixir, or
// Elixir. followed by dot-separated segments [A-Z][A-Za-z0-9_]*.
func isAlias(a string) bool {
	if a == "Elixir" {
		return true
	}
	rest, ok := strings.CutPrefix(a, "Elixir.")
	if !ok {
		return false
	}
	for seg := range strings.SplitSeq(rest, ".") {
		if seg == "" || seg[0] < 'A' || seg[0] > 'Z' {
			return false
		}
		for i := 1; i < len(seg); i++ {
			if c := seg[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isAtomIdent reports whether a prints unquoted after ':' in Elixir:
// [A-Za-z_][A-Za-z0-9_@]*, optionally ending in ? or !. (ASCII only:
// other letters are quoted, which Elixir reads the same.)
func isAtomIdent(a string) bool {
	if a == "" || !(a[0] >= 'a' && a[0] <= 'z' || a[0] >= 'A' && a[0] <= 'Z' || a[0] == '_') {
		return false
	}
	return isIdentRest(a[1:], true)
}

func isIdentRest(s string, at bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_':
		case c == '@' && at:
		case (c == '?' || c == '!') && i == len(s)-1:
		default:
			return false
		}
	}
	return true
}

// isErlBareAtom reports whether s is an atom Erlang prints unquoted:
// [a-z][A-Za-z0-9_@]*.
func isErlBareAtom(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '@') {
			return false
		}
	}
	return true
}

// exQuote quotes s as an Elixir string or quoted atom body: ", \ and #{
// escaped, control characters and invalid UTF-8 as escapes, so the
// result is safe for a terminal.
func exQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x` + hex2(s[i]))
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '#' && strings.HasPrefix(s[i+1:], "{"):
			b.WriteString(`\#`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x` + hex2(byte(r)))
		case r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029:
			b.WriteString(`\u` + strconv.FormatInt(int64(r)+0x10000, 16)[1:])
		default:
			b.WriteRune(r)
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}

// exMonitor rewrites a monitor as Info lists it, "process <0.1.0>" or
// "process {Name,Node}" (Erlang syntax), into "process #PID<0.1.0>" or
// "process {:name, :\"node@host\"}". Other forms stay as they are.
func exMonitor(s string) string {
	kind, target, ok := strings.Cut(s, " ")
	if !ok {
		return s
	}
	if isPidText(target) {
		return kind + " " + exPid(target)
	}
	body, ok := strings.CutPrefix(target, "{")
	if !ok || !strings.HasSuffix(body, "}") {
		return s
	}
	body = body[:len(body)-1]
	name, rest, ok := readErlAtom(body)
	if !ok || !strings.HasPrefix(rest, ",") {
		return s
	}
	node, rest, ok := readErlAtom(rest[1:])
	if !ok || rest != "" {
		return s
	}
	return kind + " {" + exAtom(name) + ", " + exAtom(node) + "}"
}

// readErlAtom reads one atom in Erlang syntax (as term.Format prints it:
// bare, or quoted with \\, \', \n, \t and \x{H} escapes) from the start of
// s and returns its name and the rest of s.
func readErlAtom(s string) (name, rest string, ok bool) {
	if isErlBareAtom(s) {
		return s, "", true
	}
	if s == "" {
		return "", "", false
	}
	if s[0] != '\'' {
		i := 0
		for i < len(s) && s[i] != ',' {
			i++
		}
		if i == 0 || !isErlBareAtom(s[:i]) {
			return "", "", false
		}
		return s[:i], s[i:], true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'x':
				end := strings.IndexByte(s[i:], '}')
				if !strings.HasPrefix(s[i:], "x{") || end < 0 {
					return "", "", false
				}
				n, err := strconv.ParseUint(s[i+2:i+end], 16, 32)
				if err != nil || n > utf8.MaxRune {
					return "", "", false
				}
				b.WriteRune(rune(n))
				i += end
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// exFrame rewrites a stack frame as frameText prints it, m:f/a with an
// optional " (file:line)", calling exMFA on the call.
func exFrame(s string) string {
	if call, loc, ok := strings.Cut(s, " ("); ok {
		if _, _, _, isCall := splitMFA(call); isCall {
			return exMFA(call) + " (" + loc
		}
	}
	return exMFA(s)
}
