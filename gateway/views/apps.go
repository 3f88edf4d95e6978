package views

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"beamgate/gateway/dist/term"
)

// Bounds on the supervision trees Apps walks.
const (
	maxTreeDepth    = 10
	maxTreeNodes    = 2000
	maxChildrenEach = 200 // larger supervisors (simple_one_for_one pools) are counted, not listed
)

// Where Apps' restart types come from.
const (
	RestartFromChildspec = "supervisor:get_childspec/2"
	RestartUnavailable   = "unavailable"
)

// AppChild is one child of a supervisor.
type AppChild struct {
	ID       string     `json:"id"`
	Pid      string     `json:"pid,omitempty"`
	Name     string     `json:"name,omitempty"` // registered name of a running child
	Type     string     `json:"type"`           // worker or supervisor
	Restart  string     `json:"restart"`        // permanent, transient, temporary; "" when unavailable
	Running  bool       `json:"running"`
	State    string     `json:"state"` // running, undefined (terminated or ignored) or restarting
	Note     string     `json:"note,omitempty"`
	Children []AppChild `json:"children,omitempty"`
}

// App is one running application and its supervision tree.
type App struct {
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Version     string     `json:"version"`
	Master      string     `json:"master,omitempty"`     // application master
	Supervisor  string     `json:"supervisor,omitempty"` // top supervisor
	SupName     string     `json:"supervisor_name,omitempty"`
	Children    []AppChild `json:"children,omitempty"`
	NotRunning  []string   `json:"not_running,omitempty"` // paths of children not running
}

// AppsResult is production's applications.
type AppsResult struct {
	Apps []App `json:"apps"`
	// RestartSource says where restart types come from: the child specs,
	// or nowhere when the policy refuses supervisor:get_childspec/2
	// (supervisor:which_children/1 does not report them).
	RestartSource string `json:"restart_source"`
	RestartNote   string `json:"restart_note,omitempty"`
	Truncated     bool   `json:"truncated,omitempty"`
}

type appWalker struct {
	c       Caller
	res     *AppsResult
	nodes   int
	specsOK bool
}

// Apps lists the running applications with their supervision trees and
// flags the children that are not running.
func Apps(ctx context.Context, c Caller) (*AppsResult, error) {
	reply, err := c.Call(ctx, "application", "which_applications", nil)
	if err != nil {
		return nil, err
	}
	apps, ok := term.ListElems(reply)
	if !ok {
		return nil, badReply("application:which_applications/0", reply)
	}
	info, err := c.Call(ctx, "application", "info", nil)
	if err != nil {
		return nil, err
	}
	masters := map[term.Atom]term.Pid{}
	running, _ := term.ListElems(props(info)["running"])
	for _, r := range running {
		if tp, ok := r.(term.Tuple); ok && len(tp) == 2 {
			a, ok1 := tp[0].(term.Atom)
			p, ok2 := tp[1].(term.Pid)
			if ok1 && ok2 {
				masters[a] = p
			}
		}
	}
	w := &appWalker{c: c, res: &AppsResult{RestartSource: RestartFromChildspec}, specsOK: true}
	for _, a := range apps {
		tp, ok := a.(term.Tuple)
		if !ok || len(tp) != 3 {
			continue
		}
		name, _ := tp[0].(term.Atom)
		app := App{Name: string(name), Description: stringText(tp[1]), Version: stringText(tp[2])}
		if m, ok := masters[name]; ok {
			app.Master = pidText(m)
			sup, err := topSupervisor(ctx, c, m)
			if err != nil {
				return nil, err
			}
			if sup != nil {
				app.Supervisor = pidText(*sup)
				ids, err := identify(ctx, c, []term.Pid{*sup})
				if err != nil {
					return nil, err
				}
				if id, ok := ids[*sup]; ok && !strings.Contains(id.name, ":") {
					app.SupName = id.name
				}
				app.Children, err = w.children(ctx, *sup, 0)
				if err != nil {
					return nil, err
				}
				collectNotRunning(app.Children, app.Name, &app.NotRunning)
			}
		}
		w.res.Apps = append(w.res.Apps, app)
	}
	return w.res, nil
}

// stringText prints a charlist or binary reply as text.
func stringText(t term.Term) string {
	switch v := t.(type) {
	case term.String:
		return string(v)
	case term.Binary:
		return string(v)
	case term.Nil:
		return ""
	}
	if elems, ok := term.ListElems(t); ok {
		var b strings.Builder
		for _, e := range elems {
			if n, ok := e.(term.Int); ok && n > 0 && n < 0x110000 {
				b.WriteRune(rune(n))
			}
		}
		return b.String()
	}
	return termText(t)
}

// topSupervisor finds an application's top supervisor from its master:
// the master is linked to its application_master:start_it/4 helper, which
// is linked to the top supervisor. Library applications have none.
func topSupervisor(ctx context.Context, c Caller, master term.Pid) (*term.Pid, error) {
	links, err := processLinks(ctx, c, master)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		reply, err := c.Call(ctx, "erlang", "process_info", []term.Term{l, term.MakeList(term.Atom("initial_call"), term.Atom("links"))})
		if err != nil {
			return nil, err
		}
		p := props(reply)
		if mfaText(p["initial_call"]) != "application_master:start_it/4" {
			continue
		}
		sub, _ := term.ListElems(p["links"])
		for _, s := range sub {
			if pid, ok := s.(term.Pid); ok && pid != master {
				return &pid, nil
			}
		}
	}
	return nil, nil
}

func processLinks(ctx context.Context, c Caller, pid term.Pid) ([]term.Pid, error) {
	reply, err := c.Call(ctx, "erlang", "process_info", []term.Term{pid, term.Atom("links")})
	if err != nil {
		return nil, err
	}
	tp, ok := reply.(term.Tuple)
	if !ok || len(tp) != 2 {
		return nil, nil // died
	}
	elems, _ := term.ListElems(tp[1])
	var out []term.Pid
	for _, e := range elems {
		if p, ok := e.(term.Pid); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// children walks a supervisor's children, depth first.
func (w *appWalker) children(ctx context.Context, sup term.Pid, depth int) ([]AppChild, error) {
	counts, err := w.c.Call(ctx, "supervisor", "count_children", []term.Term{sup})
	if err != nil {
		return nil, err
	}
	if active := intOr0(props(counts)["active"]); active > maxChildrenEach {
		return []AppChild{{ID: "...", Note: fmt.Sprintf("%d active children, not listed", active), Running: true, State: "running"}}, nil
	}
	reply, err := w.c.Call(ctx, "supervisor", "which_children", []term.Term{sup})
	if err != nil {
		return nil, err
	}
	kids, _ := term.ListElems(reply)
	var out []AppChild
	for _, k := range kids {
		tp, ok := k.(term.Tuple)
		if !ok || len(tp) != 4 { // {Id, Child, Type, Modules}
			continue
		}
		if w.nodes >= maxTreeNodes {
			w.res.Truncated = true
			break
		}
		w.nodes++
		ch := AppChild{ID: termText(tp[0]), Type: termText(tp[2])}
		switch v := tp[1].(type) {
		case term.Pid:
			ch.Pid, ch.Running, ch.State = pidText(v), true, "running"
		default:
			ch.State = termText(v) // undefined or restarting
		}
		if ch.Restart, err = w.restart(ctx, sup, tp[0]); err != nil {
			return nil, err
		}
		if pid, ok := tp[1].(term.Pid); ok && ch.Type == "supervisor" {
			if depth+1 >= maxTreeDepth {
				w.res.Truncated = true
			} else if ch.Children, err = w.children(ctx, pid, depth+1); err != nil {
				return nil, err
			}
		}
		out = append(out, ch)
	}
	// Registered names of the running children, in one batch.
	var pids []term.Pid
	for _, ch := range out {
		if p, ok := parsePid(ch.Pid, sup.Node, sup.Creation); ok {
			pids = append(pids, p)
		}
	}
	if len(pids) > 0 {
		names, err := registeredNames(ctx, w.c, pids)
		if err != nil {
			return nil, err
		}
		for i := range out {
			out[i].Name = names[out[i].Pid]
		}
	}
	return out, nil
}

func registeredNames(ctx context.Context, c Caller, pids []term.Pid) (map[string]string, error) {
	samples, err := sample(ctx, c, pids, []term.Atom{"registered_name"})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range samples {
		out[pidText(s.pid)] = nameOf(s.items["registered_name"])
	}
	return out, nil
}

// restart reads a child's restart type from its child spec, once the
// policy has allowed supervisor:get_childspec/2; after a refusal it stops
// asking and reports restart types as unavailable.
func (w *appWalker) restart(ctx context.Context, sup term.Pid, id term.Term) (string, error) {
	if !w.specsOK {
		return "", nil
	}
	args := []term.Term{sup, id}
	var (
		reply term.Term
		err   error
	)
	if rc, ok := w.c.(redactedCaller); ok {
		// The child spec's start arguments may hold secrets: the gateway
		// keeps the restart type only (the child type is in which_children).
		reply, err = rc.callRedacted(ctx, "supervisor", "get_childspec", args, "restart", keepRestart)
	} else {
		reply, err = w.c.Call(ctx, "supervisor", "get_childspec", args)
	}
	var denied *DeniedError
	if errors.As(err, &denied) {
		w.specsOK = false
		w.res.RestartSource = RestartUnavailable
		w.res.RestartNote = fmt.Sprintf("supervisor:get_childspec/2 refused by policy rule %s; supervisor:which_children/1 does not report restart types", denied.Rule)
		return "", nil
	}
	if err != nil {
		return "", err
	}
	tp, ok := reply.(term.Tuple)
	if !ok || len(tp) != 2 || tp[0] != term.Atom("ok") {
		return "", nil
	}
	switch spec := tp[1].(type) {
	case term.Map:
		for _, kv := range spec {
			if kv.Key == term.Atom("restart") {
				return termText(kv.Value), nil
			}
		}
	case term.Tuple: // an old-style {Id, Start, Restart, ...}
		if len(spec) == 6 {
			return termText(spec[2]), nil
		}
	}
	return "", nil
}

// keepRestart reduces a get_childspec reply to {ok, #{restart => R}}.
func keepRestart(reply term.Term) term.Term {
	tp, ok := reply.(term.Tuple)
	if !ok || len(tp) != 2 || tp[0] != term.Atom("ok") {
		return term.Atom("error")
	}
	var restart term.Term = term.Atom("undefined")
	switch spec := tp[1].(type) {
	case term.Map:
		for _, kv := range spec {
			if kv.Key == term.Atom("restart") {
				restart = kv.Value
			}
		}
	case term.Tuple:
		if len(spec) == 6 {
			restart = spec[2]
		}
	}
	if _, ok := restart.(term.Atom); !ok {
		restart = term.Atom("undefined")
	}
	return term.Tuple{term.Atom("ok"), term.Map{{Key: term.Atom("restart"), Value: restart}}}
}

func collectNotRunning(kids []AppChild, path string, out *[]string) {
	for _, k := range kids {
		p := path + "/" + k.ID
		if !k.Running {
			*out = append(*out, p)
		}
		collectNotRunning(k.Children, p, out)
	}
}

// WriteText implements Result.
func (r *AppsResult) WriteText(w io.Writer) error {
	t := newTable("APPLICATION / CHILD", "PID", "NAME", "TYPE", "RESTART", "STATE")
	for _, a := range r.Apps {
		sup := a.Supervisor
		t.add(a.Name+" "+a.Version, sup, a.SupName, "application", "", appState(a))
		addChildren(t, a.Children, "  ")
	}
	if err := t.write(w); err != nil {
		return err
	}
	var b strings.Builder
	if r.RestartNote != "" {
		fmt.Fprintf(&b, "restart types: %s\n", r.RestartNote)
	}
	for _, a := range r.Apps {
		for _, p := range a.NotRunning {
			fmt.Fprintf(&b, "NOT RUNNING: %s\n", p)
		}
	}
	if r.Truncated {
		fmt.Fprintf(&b, "(tree cut at depth %d or %d children)\n", maxTreeDepth, maxTreeNodes)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func appState(a App) string {
	switch {
	case a.Master == "":
		return "loaded (library)"
	case len(a.NotRunning) > 0:
		return fmt.Sprintf("running, %d NOT RUNNING", len(a.NotRunning))
	}
	return "running"
}

func addChildren(t *table, kids []AppChild, indent string) {
	for _, k := range kids {
		state := k.State
		if !k.Running {
			state = "NOT RUNNING (" + k.State + ")"
		}
		if k.Note != "" {
			state = k.Note
		}
		restart := k.Restart
		if restart == "" {
			restart = "?"
		}
		t.add(indent+k.ID, k.Pid, k.Name, k.Type, restart, state)
		addChildren(t, k.Children, indent+"  ")
	}
}
