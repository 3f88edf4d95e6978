package views

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

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

// Info summarises one process, named by "<0.ID.Serial>" or by its
// registered name. A name is looked up in erlang:registered() first, so
// a mistyped name never creates an atom on production.
func Info(ctx context.Context, c Caller, proc string) (*ProcInfo, error) {
	pid, err := resolveProc(ctx, c, proc)
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
		return nil, fmt.Errorf("%w: %s", ErrNoProcess, proc)
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

// resolveProc turns "<0.ID.Serial>" or a registered name into a pid.
func resolveProc(ctx context.Context, c Caller, proc string) (term.Pid, error) {
	if strings.HasPrefix(proc, "<") || strings.HasPrefix(proc, "0.") {
		// A pid needs production's node name and creation: take them
		// from a pid production sends.
		initPid, err := c.Call(ctx, "erlang", "whereis", []term.Term{term.Atom("init")})
		if err != nil {
			return term.Pid{}, err
		}
		ref, ok := initPid.(term.Pid)
		if !ok {
			return term.Pid{}, badReply("erlang:whereis(init)", initPid)
		}
		pid, ok := parsePid(proc, ref.Node, ref.Creation)
		if !ok {
			return term.Pid{}, fmt.Errorf("views: %q is not a local pid <0.N.S>", proc)
		}
		return pid, nil
	}
	reply, err := c.Call(ctx, "erlang", "registered", nil)
	if err != nil {
		return term.Pid{}, err
	}
	names, _ := term.ListElems(reply)
	for _, n := range names {
		if a, ok := n.(term.Atom); ok && string(a) == proc {
			w, err := c.Call(ctx, "erlang", "whereis", []term.Term{a})
			if err != nil {
				return term.Pid{}, err
			}
			if pid, ok := w.(term.Pid); ok {
				return pid, nil
			}
			break // a port, or unregistered since
		}
	}
	return term.Pid{}, fmt.Errorf("%w registered as %q", ErrNoProcess, proc)
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
