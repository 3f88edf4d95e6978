package views

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ViewTimeout bounds one rendering of a view (one refresh of a watch).
const ViewTimeout = 2 * time.Minute

// UsageError is a command line Run cannot parse; its text is for the
// engineer.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return "views: " + e.Msg + " (see help)" }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Help describes the commands.
func Help() string {
	return `beamgate views: read-only, audited views of a production node

  top NODE [--by memory|reductions|message_queue_len|total_heap_size] [-n 10] [--window 1s]
        top processes: pid, registered name or initial call, current function
        and the value; reductions are the delta over --window (like
        recon:proc_window), not the lifetime total
  ets NODE [--by memory|size] [-n 20]
        ETS tables: name, owner, type, size, memory (bytes), protection
  apps NODE
        applications and supervision trees; children not running are flagged
  info NODE PID|NAME
        one process: status, memory, links, monitors, current stack;
        never its messages, dictionary or state. PID as any shell prints
        it: <0.50.0>, 0.50.0, <9429.50.0> (another node's pid as your
        shell or observer shows it: the first number is ignored, the pid
        is NODE's), #PID<0.50.0> or #PID<9429.50.0> (iex). NAME as
        registered: my_server, :my_server, or MyApp.Worker (tried as
        typed, then as Elixir.MyApp.Worker)
  stats NODE [--window 1s]
        scheduler utilisation, run queues, memory by type, process, port,
        atom and ETS counts against their limits, IO
  binaries NODE [-n 10]
        processes holding the most refc-binary memory, from
        process_info(P, binary) only: it does NOT garbage-collect (unlike
        recon:bin_leak), so it shows what is referenced, not what would leak
  help

top, ets, stats and binaries also take a CLUSTER instead of a NODE: they
visit every node of it you may reach (4 at once), rank across them with a
NODE column, and list a node that is down or times out under the table
(exit status 2) while still showing the others.

Every command takes --json (one JSON object per line, for tools) and
--watch 2s (redraw in place, as top does; intervals under 1s are refused).
Every call a view makes is checked by your role's policy and audited.
Work per view is bounded: each call reads one process, at most 32 calls
are in flight, at most 200000 processes are sampled and 100 rows shown;
at most 4 views run per user per node (limits.views_per_node).

Every command takes --elixir or --erlang: names and pids as iex prints
them (#PID<0.50.0>, MyApp.Worker for Elixir.MyApp.Worker, :code_server,
:gen_server.loop/7, MyApp.Worker.init/1, #Reference<...>) or as erl
does. Without either, a view asks the node once whether it runs Elixir
(erlang:function_exported('Elixir.Kernel', '__info__', 1)) and uses
iex's forms if so; a cluster view uses them for every row when any node
that answered runs Elixir. Text and JSON change alike: pids, registered
and ETS table names, initial and current functions, stack frames,
monitors and child ids; never node or application names, numbers, or
values such as status, type or restart (stats has nothing to change).
Quote a pid for your shell: info NODE '#PID<0.50.0>'.
`
}

// CommandHelp is Help's entry for one command (its usage line and
// description, and the flags every command takes), or "" for an unknown
// command.
func CommandHelp(cmd string) string {
	lines := strings.Split(Help(), "\n")
	var b strings.Builder
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "  "+cmd+" ") && l != "  "+cmd {
			continue
		}
		b.WriteString(l + "\n")
		for i++; i < len(lines) && strings.HasPrefix(lines[i], "        "); i++ {
			b.WriteString(lines[i] + "\n")
		}
		break
	}
	if b.Len() == 0 {
		return ""
	}
	if slices.Contains(ClusterCommands, cmd) {
		b.WriteString("\n" + cmd + " also takes a CLUSTER instead of a NODE: every node of it you may reach, ranked\ntogether with a NODE column; a node that is down is listed and the others shown (exit 2).\n")
	}
	b.WriteString("\nEvery view takes --json (one JSON object per line) and --watch INTERVAL (at least 1s;\nneeds ssh -t unless --json), and --elixir or --erlang (names and pids as iex or erl prints\nthem; by default as the node's own shell would). Every call it makes is checked by your\nrole's policy and audited.\n")
	return b.String()
}

type runFlags struct {
	by     string
	n      int
	window time.Duration
	json   bool
	watch  time.Duration
	elixir bool // --elixir
	erlang bool // --erlang
	pos    []string
}

// style is the name style the flags ask for.
func (f *runFlags) style() styleMode {
	switch {
	case f.elixir:
		return styleElixir
	case f.erlang:
		return styleErlang
	}
	return styleAuto
}

// parse reads flags anywhere among the positional arguments.
func parse(cmd string, args []string) (*runFlags, error) {
	f := &runFlags{}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.by, "by", "", "")
	fs.IntVar(&f.n, "n", 0, "")
	fs.Func("window", "", func(s string) (err error) { f.window, err = parseDuration(s); return })
	fs.BoolVar(&f.json, "json", false, "")
	fs.Func("watch", "", func(s string) (err error) { f.watch, err = parseDuration(s); return })
	fs.BoolVar(&f.elixir, "elixir", false, "")
	fs.BoolVar(&f.erlang, "erlang", false, "")
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", cmd, err)
		}
		args = fs.Args()
		if len(args) > 0 {
			f.pos = append(f.pos, args[0])
			args = args[1:]
		}
	}
	if f.n < 0 || f.n > MaxRows {
		return nil, usagef("%s: -n must be 1..%d", cmd, MaxRows)
	}
	if f.window < 0 || f.window > MaxWindow {
		return nil, usagef("%s: --window must be at most %v", cmd, MaxWindow)
	}
	if f.elixir && f.erlang {
		return nil, usagef("%s: --elixir and --erlang exclude each other", cmd)
	}
	return f, nil
}

// parseDuration accepts Go durations (2s, 500ms) and plain seconds (2).
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// Run runs one view command against the already-resolved target behind
// caller and writes it to out: args are the command and its flags, such
// as ["top", "--by", "memory", "-n", "10", "--json"] or ["info",
// "<0.85.0>"]. With --watch it redraws until ctx ends (JSON: one line per
// refresh). With --elixir, or on a node DetectElixir reports as an Elixir
// node (asked once per Run, after the first successful rendering's view,
// unless --erlang or --elixir is given), the result is rewritten by
// ElixirStyle before it is written. Errors are *UsageError, *DeniedError,
// ErrWatchInterval or what the view met.
func Run(ctx context.Context, caller Caller, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		_, err := io.WriteString(out, Help())
		return err
	}
	cmd := args[0]
	f, err := parse(cmd, args[1:])
	if err != nil {
		return err
	}
	view, err := viewFor(cmd, f)
	if err != nil {
		return err
	}
	ctx = withView(ctx, cmd)
	st := newStyler(f.style())
	render := func(w io.Writer) error {
		vctx, cancel := context.WithTimeout(ctx, ViewTimeout)
		defer cancel()
		res, err := view(vctx, caller)
		if err != nil {
			return err
		}
		if st.elixir(vctx, 0, caller) {
			res = ElixirStyle(res)
		}
		if f.json {
			return WriteJSON(w, res)
		}
		return res.WriteText(w)
	}
	switch {
	case f.watch == 0:
		return render(out)
	case f.watch < MinWatchInterval:
		return ErrWatchInterval
	case f.json:
		return watchJSON(ctx, f.watch, render, out)
	}
	return Watch(ctx, f.watch, render, out)
}

// watchJSON renders one JSON line per interval until ctx ends.
func watchJSON(ctx context.Context, interval time.Duration, render func(io.Writer) error, out io.Writer) error {
	for {
		if err := render(out); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if sleep(ctx, interval) != nil {
			return nil
		}
	}
}

type viewFunc func(context.Context, Caller) (Result, error)

// viewFor checks a command's arguments and returns the view to run.
func viewFor(cmd string, f *runFlags) (viewFunc, error) {
	wantPos := 0
	if cmd == "info" {
		wantPos = 1
	}
	if len(f.pos) != wantPos {
		if cmd == "info" {
			return nil, usagef("info takes one PID or registered NAME")
		}
		return nil, usagef("%s: unexpected arguments %s", cmd, strings.Join(f.pos, " "))
	}
	noFlag := func(name string, set bool) error {
		if set {
			return usagef("%s does not take %s", cmd, name)
		}
		return nil
	}
	switch cmd {
	case "top":
		if f.by != "" && !validKey(f.by, TopKeys) {
			return nil, usagef("top --by %s: want one of %s", f.by, strings.Join(TopKeys, ", "))
		}
		opts := TopOptions{By: f.by, N: f.n, Window: f.window}
		return func(ctx context.Context, c Caller) (Result, error) { return Top(ctx, c, opts) }, nil
	case "ets":
		if f.by != "" && !validKey(f.by, ETSKeys) {
			return nil, usagef("ets --by %s: want one of %s", f.by, strings.Join(ETSKeys, ", "))
		}
		return func(ctx context.Context, c Caller) (Result, error) { return ETS(ctx, c, f.by, f.n) }, nil
	case "apps":
		if err := errors.Join(noFlag("--by", f.by != ""), noFlag("-n", f.n != 0), noFlag("--window", f.window != 0)); err != nil {
			return nil, err
		}
		return func(ctx context.Context, c Caller) (Result, error) { return Apps(ctx, c) }, nil
	case "info":
		if err := errors.Join(noFlag("--by", f.by != ""), noFlag("-n", f.n != 0), noFlag("--window", f.window != 0)); err != nil {
			return nil, err
		}
		proc := f.pos[0]
		if _, err := parseProc(proc); err != nil {
			return nil, usagef("info: %v", err)
		}
		return func(ctx context.Context, c Caller) (Result, error) { return Info(ctx, c, proc) }, nil
	case "stats":
		if err := errors.Join(noFlag("--by", f.by != ""), noFlag("-n", f.n != 0)); err != nil {
			return nil, err
		}
		return func(ctx context.Context, c Caller) (Result, error) { return StatsOf(ctx, c, f.window) }, nil
	case "binaries":
		if err := errors.Join(noFlag("--by", f.by != ""), noFlag("--window", f.window != 0)); err != nil {
			return nil, err
		}
		return func(ctx context.Context, c Caller) (Result, error) { return Binaries(ctx, c, f.n) }, nil
	}
	return nil, usagef("unknown command %q", cmd)
}
