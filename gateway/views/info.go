package views

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"beamgate/gateway/dist/term"
)

// ErrNoProcess is returned by Info for a pid or name with no live process.
var ErrNoProcess = errors.New("views: no such process")

// maxListed bounds the links, monitors and stack frames Info lists.
const maxListed = 50

// infoItems are the process_info items Info reads: observer's process
// summary without the mailbox, the dictionary or the state.
var infoItems = []term.Atom{
	"registered_name", "initial_call", "current_function", "status", "message_queue_len",
	"links", "monitors", "monitored_by", "trap_exit", "priority", "group_leader",
	"memory", "total_heap_size", "heap_size", "stack_size", "reductions",
	"garbage_collection", "current_stacktrace",
}

// ProcInfo is a process's observer-style summary. It never holds message
// contents, the process dictionary or the process state.
type ProcInfo struct {
	Pid             string           `json:"pid"`
	RegisteredName  string           `json:"registered_name,omitempty"`
	InitialCall     string           `json:"initial_call"`
	CurrentFunction string           `json:"current_function"`
	Status          string           `json:"status"`
	MessageQueueLen int64            `json:"message_queue_len"`
	Memory          int64            `json:"memory"`          // bytes
	TotalHeapSize   int64            `json:"total_heap_size"` // words
	HeapSize        int64            `json:"heap_size"`       // words
	StackSize       int64            `json:"stack_size"`      // words
	Reductions      int64            `json:"reductions"`
	TrapExit        bool             `json:"trap_exit"`
	Priority        string           `json:"priority"`
	GroupLeader     string           `json:"group_leader"`
	GC              map[string]int64 `json:"garbage_collection"`
	Links           []string         `json:"links"`
	Monitors        []string         `json:"monitors"`
	MonitoredBy     []string         `json:"monitored_by"`
	Stacktrace      []string         `json:"current_stacktrace"`
	Truncated       bool             `json:"truncated,omitempty"` // a list was cut at 50
}

// Info summarises one process, named in any of ProcForms: a pid
// (<0.50.0>, 0.50.0, <9429.50.0>, #PID<0.50.0>, #PID<9429.50.0>; the
// node part is ignored, the pid is the target's) or a registered name
// (my_server; MyApp.Worker, looked up as Elixir.MyApp.Worker when no
// process is registered as typed; Elixir.MyApp.Worker; :my_server). A
// name is looked up in erlang:registered() first, so a mistyped name
// never creates an atom on production. An argument in none of the forms
// is a *UsageError, before any call.
func Info(ctx context.Context, c Caller, proc string) (*ProcInfo, error) {
	sp, err := parseProc(proc)
	if err != nil {
		return nil, usagef("info: %v", err)
	}
	pid, err := resolveProc(ctx, c, sp)
	if err != nil {
		return nil, err
	}
	items := make([]term.Term, len(infoItems))
	for i, it := range infoItems {
		items[i] = it
	}
	reply, err := c.Call(ctx, "erlang", "process_info", []term.Term{pid, term.MakeList(items...)})
	if err != nil {
		return nil, err
	}
	if reply == term.Undefined {
		return nil, fmt.Errorf("%w: %s", ErrNoProcess, pidText(pid))
	}
	p := props(reply)
	info := &ProcInfo{
		Pid: pidText(pid), RegisteredName: nameOf(p["registered_name"]),
		InitialCall: initialCall(ctx, c, pid, p["initial_call"]), CurrentFunction: mfaText(p["current_function"]),
		Status: termText(p["status"]), MessageQueueLen: intOr0(p["message_queue_len"]),
		Memory: intOr0(p["memory"]), TotalHeapSize: intOr0(p["total_heap_size"]),
		HeapSize: intOr0(p["heap_size"]), StackSize: intOr0(p["stack_size"]),
		Reductions: intOr0(p["reductions"]), TrapExit: p["trap_exit"] == term.True,
		Priority: termText(p["priority"]), GroupLeader: termText(p["group_leader"]),
		GC: map[string]int64{},
	}
	for k, v := range props(p["garbage_collection"]) {
		if n, ok := toInt(v); ok {
			info.GC[string(k)] = n
		}
	}
	list := func(t term.Term, each func(term.Term) string) []string {
		elems, _ := term.ListElems(t)
		if len(elems) > maxListed {
			elems, info.Truncated = elems[:maxListed], true
		}
		out := make([]string, 0, len(elems))
		for _, e := range elems {
			out = append(out, each(e))
		}
		return out
	}
	info.Links = list(p["links"], termText)
	info.MonitoredBy = list(p["monitored_by"], termText)
	info.Monitors = list(p["monitors"], func(t term.Term) string {
		if tp, ok := t.(term.Tuple); ok && len(tp) == 2 { // {process, Pid | {Name, Node}}
			return termText(tp[0]) + " " + termText(tp[1])
		}
		return termText(t)
	})
	info.Stacktrace = list(p["current_stacktrace"], frameText)
	return info, nil
}

// frameText prints {M, F, Arity, Location} as m:f/a (file:line).
func frameText(t term.Term) string {
	tp, ok := t.(term.Tuple)
	if !ok || len(tp) != 4 {
		return termText(t)
	}
	s := mfaText(term.Tuple{tp[0], tp[1], tp[2]})
	loc := props(tp[3])
	if file, ok := loc["file"].(term.String); ok {
		s += fmt.Sprintf(" (%s:%d)", string(file), intOr0(loc["line"]))
	}
	return s
}

// Bounds on what info accepts as a process.
const (
	// maxProcArg bounds the argument in bytes, before it is looked at.
	maxProcArg = 1024
	// maxAtomChars is Erlang's limit on an atom's length in characters.
	maxAtomChars = 255
)

// ProcForms lists the forms Info accepts, for error messages and help.
const ProcForms = "a pid as <0.ID.SERIAL> or 0.ID.SERIAL, <N.ID.SERIAL> as your own shell or observer prints " +
	"another node's pid (N is ignored: the pid is NODE's), #PID<0.ID.SERIAL> or #PID<N.ID.SERIAL> as iex prints it; " +
	"or a registered name: my_server, MyApp.Worker (looked up as Elixir.MyApp.Worker when not registered as typed), " +
	"Elixir.MyApp.Worker, :my_server or :\"my name\" (Elixir atoms), 'my name' (an Erlang quoted atom)"

// procSpec is a process as the engineer named it: a pid's ID and Serial
// on the target node, or the registered names to try, in order.
type procSpec struct {
	pid        bool
	id, serial uint32
	names      []string
}

// argText quotes an engineer's argument for an error message, bounded
// and with control characters escaped.
func argText(s string) string {
	const limit = 60 // bytes of quoted text
	if q := strconv.Quote(s); len(q) <= limit {
		return q
	}
	cut := 0
	for cut < len(s) {
		_, size := utf8.DecodeRuneInString(s[cut:])
		if len(strconv.Quote(s[:cut+size])) > limit {
			break
		}
		cut += size
	}
	return strconv.Quote(s[:cut]) + "..."
}

// parseProc reads a pid or registered name in any of ProcForms. It only
// parses: no atom is made of a name.
func parseProc(s string) (procSpec, error) {
	if len(s) > maxProcArg {
		return procSpec{}, fmt.Errorf("a %d-byte argument is not a pid or a registered name (at most %d characters)", len(s), maxAtomChars)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return procSpec{}, fmt.Errorf("want %s", ProcForms)
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, isControl) >= 0 {
		return procSpec{}, fmt.Errorf("%s holds control characters or invalid UTF-8; want %s", argText(s), ProcForms)
	}
	if c := s[0]; c == '<' || c == '#' || c >= '0' && c <= '9' {
		return parsePidArg(s)
	}
	name, exact := s, false
	switch {
	case strings.HasPrefix(s, ":"): // Elixir atom syntax: exactly this atom
		name, exact = s[1:], true
		if q, ok := unquote(name, '"'); ok {
			name = q
		} else if strings.ContainsAny(name, `"\`) {
			return procSpec{}, fmt.Errorf("%s is not an Elixir atom; want %s", argText(s), ProcForms)
		}
	case strings.HasPrefix(s, "'"): // an Erlang quoted atom
		q, ok := unquote(s, '\'')
		if !ok {
			return procSpec{}, fmt.Errorf("%s is not an Erlang quoted atom; want %s", argText(s), ProcForms)
		}
		name, exact = q, true
	}
	if name == "" {
		return procSpec{}, fmt.Errorf("%s names no atom; want %s", argText(s), ProcForms)
	}
	if utf8.RuneCountInString(name) > maxAtomChars {
		return procSpec{}, fmt.Errorf("%s is longer than an atom can be (%d characters)", argText(s), maxAtomChars)
	}
	sp := procSpec{names: []string{name}}
	if c := name[0]; !exact && c >= 'A' && c <= 'Z' && !strings.HasPrefix(name, "Elixir.") &&
		utf8.RuneCountInString(name)+len("Elixir.") <= maxAtomChars {
		sp.names = append(sp.names, "Elixir."+name)
	}
	return sp, nil
}

// unquote strips the quotes q around s; s may not hold q or a backslash
// inside.
func unquote(s string, q byte) (string, bool) {
	if len(s) < 2 || s[0] != q || s[len(s)-1] != q {
		return "", false
	}
	in := s[1 : len(s)-1]
	if strings.IndexByte(in, q) >= 0 || strings.IndexByte(in, '\\') >= 0 {
		return "", false
	}
	return in, true
}

// isControl reports C0 and C1 control characters and DEL.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }

// parsePidArg reads <N.ID.S>, N.ID.S or #PID<N.ID.S>. N, the node part,
// is ignored: 0 is the node's own processes, and any other value is the
// index the engineer's node gave the node, which means nothing here.
func parsePidArg(s string) (procSpec, error) {
	bad := func() (procSpec, error) {
		return procSpec{}, fmt.Errorf("%s is not a pid; want %s", argText(s), ProcForms)
	}
	body := s
	switch {
	case len(s) >= 5 && strings.EqualFold(s[:5], "#PID<"):
		body = s[5:]
		if !strings.HasSuffix(body, ">") {
			return bad()
		}
		body = body[:len(body)-1]
	case s[0] == '#':
		return bad()
	case s[0] == '<':
		if !strings.HasSuffix(s, ">") {
			return bad()
		}
		body = s[1 : len(s)-1]
	}
	parts := strings.Split(body, ".")
	if len(parts) != 3 || len(body) > 32 {
		return bad()
	}
	var nums [3]uint64
	for i, p := range parts {
		if !allDigits(p) || len(p) > 10 {
			return bad()
		}
		nums[i], _ = strconv.ParseUint(p, 10, 64)
	}
	if nums[0] >= 1<<32 || nums[1] >= 1<<28 || nums[2] >= 1<<28 {
		return procSpec{}, fmt.Errorf("%s is out of range for a pid (ID and SERIAL are below %d)", argText(s), 1<<28)
	}
	return procSpec{pid: true, id: uint32(nums[1]), serial: uint32(nums[2])}, nil
}

// resolveProc turns a process in any of ProcForms into a pid of the
// target. A pid takes the target's node name and creation from a pid the
// target sends; a name is looked up in erlang:registered() and only a
// name found there is sent back (erlang:whereis/1), so a mistyped name
// never creates an atom on production.
func resolveProc(ctx context.Context, c Caller, sp procSpec) (term.Pid, error) {
	if sp.pid {
		initPid, err := c.Call(ctx, "erlang", "whereis", []term.Term{term.Atom("init")})
		if err != nil {
			return term.Pid{}, err
		}
		ref, ok := initPid.(term.Pid)
		if !ok {
			return term.Pid{}, badReply("erlang:whereis(init)", initPid)
		}
		return term.Pid{Node: ref.Node, ID: sp.id, Serial: sp.serial, Creation: ref.Creation}, nil
	}
	reply, err := c.Call(ctx, "erlang", "registered", nil)
	if err != nil {
		return term.Pid{}, err
	}
	elems, _ := term.ListElems(reply)
	registered := make(map[string]term.Atom, len(elems))
	for _, n := range elems {
		if a, ok := n.(term.Atom); ok {
			registered[string(a)] = a
		}
	}
	tried := make([]string, len(sp.names))
	for i, name := range sp.names {
		tried[i] = argText(name)
	}
	for _, name := range sp.names {
		a, ok := registered[name]
		if !ok {
			continue
		}
		w, err := c.Call(ctx, "erlang", "whereis", []term.Term{a})
		if err != nil {
			return term.Pid{}, err
		}
		if pid, ok := w.(term.Pid); ok {
			return pid, nil
		}
		// A port, or unregistered since.
		return term.Pid{}, fmt.Errorf("%w registered as %s (it is a port or was just unregistered)", ErrNoProcess, argText(name))
	}
	return term.Pid{}, fmt.Errorf("%w registered as %s", ErrNoProcess, strings.Join(tried, " or "))
}

// WriteText implements Result.
func (p *ProcInfo) WriteText(w io.Writer) error {
	t := newTable("FIELD", "VALUE")
	t.add("pid", p.Pid)
	if p.RegisteredName != "" {
		t.add("registered name", p.RegisteredName)
	}
	t.add("initial call", p.InitialCall)
	t.add("current function", p.CurrentFunction)
	t.add("status", p.Status)
	t.add("message queue", itoa(p.MessageQueueLen))
	t.add("memory", bytesText(p.Memory))
	t.add("heap (words)", fmt.Sprintf("total %d, heap %d, stack %d", p.TotalHeapSize, p.HeapSize, p.StackSize))
	t.add("reductions", itoa(p.Reductions))
	t.add("trap_exit", fmt.Sprint(p.TrapExit))
	t.add("priority", p.Priority)
	t.add("group leader", p.GroupLeader)
	t.add("gc", fmt.Sprintf("min_heap_size %d, fullsweep_after %d, minor_gcs %d",
		p.GC["min_heap_size"], p.GC["fullsweep_after"], p.GC["minor_gcs"]))
	for _, l := range []struct {
		name  string
		items []string
	}{{"links", p.Links}, {"monitors", p.Monitors}, {"monitored by", p.MonitoredBy}, {"stack", p.Stacktrace}} {
		if len(l.items) == 0 {
			t.add(l.name, "-")
		}
		for i, it := range l.items {
			name := ""
			if i == 0 {
				name = l.name
			}
			t.add(name, it)
		}
	}
	if p.Truncated {
		t.add("", fmt.Sprintf("(lists cut at %d)", maxListed))
	}
	return t.write(w)
}
