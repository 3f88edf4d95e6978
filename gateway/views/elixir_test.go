package views

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"beamgate/gateway/dist/term"
)

func TestParseProc(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	pid := func(id, serial uint32) procSpec { return procSpec{pid: true, id: id, serial: serial} }
	names := func(n ...string) procSpec { return procSpec{names: n} }
	for _, tt := range []struct {
		in   string
		want procSpec
	}{
		{"<0.50.0>", pid(50, 0)},
		{"0.50.0", pid(50, 0)},
		{"<9429.50.0>", pid(50, 0)}, // the engineer's node's index for the node: ignored
		{"9429.50.7", pid(50, 7)},
		{"#PID<0.50.0>", pid(50, 0)},
		{"#PID<9429.50.3>", pid(50, 3)},
		{"#pid<0.1.2>", pid(1, 2)},
		{"  <0.50.0>\n", pid(50, 0)},
		{"<0.268435455.268435455>", pid(1<<28-1, 1<<28-1)},
		{"<4294967295.1.0>", pid(1, 0)},
		{"my_server", names("my_server")},
		{"code_server", names("code_server")},
		{"MyApp.SlowConsumer", names("MyApp.SlowConsumer", "Elixir.MyApp.SlowConsumer")},
		{"Foo", names("Foo", "Elixir.Foo")},
		{"Elixir.MyApp.X", names("Elixir.MyApp.X")},
		{":code_server", names("code_server")},
		{":Foo", names("Foo")}, // Elixir atom syntax is exact: no Elixir. prefix
		{`:"my name"`, names("my name")},
		{`:"Elixir.MyApp.X"`, names("Elixir.MyApp.X")},
		{"'my name'", names("my name")},
		{"'MyApp.X'", names("MyApp.X")},
		{"my name", names("my name")},
		{"café", names("café")},
		{long("a", 255), names(long("a", 255))},
		{long("ä", 255), names(long("ä", 255))},
		{long("A", 248), names(long("A", 248), "Elixir."+long("A", 248))},
		{long("A", 249), names(long("A", 249))}, // Elixir.+249 is longer than an atom
	} {
		got, err := parseProc(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseProc(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}

	for _, tt := range []struct {
		in, why string // why: a word the message must hold
	}{
		{"", "#PID<0.ID.SERIAL>"},
		{"   ", "#PID<0.ID.SERIAL>"},
		{"#PID<0.50.0", "not a pid"},
		{"#PID<", "not a pid"},
		{"#PID<>", "not a pid"},
		{"#PID", "not a pid"},
		{"#PID<0.50.0>>", "not a pid"},
		{"<0.50.0", "not a pid"},
		{"<0.50>", "not a pid"},
		{"<0.50.0.1>", "not a pid"},
		{"<a.b.c>", "not a pid"},
		{"<0..0>", "not a pid"},
		{"<>", "not a pid"},
		{"<", "not a pid"},
		{"<-1.50.0>", "not a pid"},
		{"<0.+5.0>", "not a pid"},
		{"< 0.50.0 >", "not a pid"},
		{"0.50.0x", "not a pid"},
		{"0.50", "not a pid"},
		{"42", "not a pid"},
		{"#Port<0.5>", "not a pid"},
		{"#Ref<0.1.2.3>", "not a pid"},
		{"#PID<0.50.0>" + long("0", 40), "not a pid"},
		{"<0." + long("9", 11) + ".0>", "not a pid"},
		{"<99999999999.1.0>", "not a pid"},
		{"<4294967296.1.0>", "out of range"},
		{"<0.268435456.0>", "out of range"},
		{"<0.1.268435456>", "out of range"},
		{"evil\x1b[2Jname", "control characters"},
		{"name\x00", "control characters"},
		{"na\u0085me", "control characters"},
		{"\xff\xfe", "invalid UTF-8"},
		{"#PID<0.1\x07.0>", "control characters"},
		{long("a", 256), "longer than an atom"},
		{long("ä", 256), "longer than an atom"},
		{long("a", 5000), "5000-byte"},
		{":", "names no atom"},
		{`:""`, "names no atom"},
		{"''", "names no atom"},
		{`:"a`, "not an Elixir atom"},
		{`:"a"b"`, "not an Elixir atom"},
		{`:a\b`, "not an Elixir atom"},
		{"'abc", "not an Erlang quoted atom"},
		{`'a\'b'`, "not an Erlang quoted atom"},
	} {
		got, err := parseProc(tt.in)
		if err == nil {
			t.Errorf("parseProc(%q) = %+v, want an error", tt.in, got)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.why) {
			t.Errorf("parseProc(%q) error %q does not say %q", tt.in, msg, tt.why)
		}
		if strings.IndexFunc(msg, isControl) >= 0 || !utf8.ValidString(msg) || len(msg) > len(ProcForms)+200 {
			t.Errorf("parseProc(%q) error unsafe or unbounded (%d bytes): %q", tt.in, len(msg), msg)
		}
		if strings.Contains(tt.why, "pid") && !strings.Contains(msg, "#PID<N.ID.SERIAL>") {
			t.Errorf("parseProc(%q) error does not list the forms: %q", tt.in, msg)
		}
	}
}

// registryCaller is a node with registered names: erlang:registered/0
// lists them, erlang:whereis/1 answers their pid (or port), and every
// call is recorded.
type registryCaller struct {
	mu    sync.Mutex
	names map[term.Atom]term.Term
	calls []string
}

var regNode = term.Atom("prod@host")

func (r *registryCaller) Call(_ context.Context, m, f term.Atom, args []term.Term) (term.Term, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	call := mfaOf(m, f)
	if len(args) == 1 {
		call += "(" + term.Format(args[0], 80) + ")"
	}
	r.calls = append(r.calls, call)
	switch mfaOf(m, f) {
	case "erlang:registered":
		var out []term.Term
		for n := range r.names {
			out = append(out, n)
		}
		return term.MakeList(out...), nil
	case "erlang:whereis":
		if args[0] == term.Atom("init") {
			return term.Pid{Node: regNode, ID: 0, Creation: 77}, nil
		}
		if v, ok := r.names[args[0].(term.Atom)]; ok {
			return v, nil
		}
		return term.Undefined, nil
	}
	return nil, fmt.Errorf("unexpected call %s", call)
}

func TestResolveProc(t *testing.T) {
	p := func(id uint32) term.Pid { return term.Pid{Node: regNode, ID: id, Creation: 77} }
	names := map[term.Atom]term.Term{
		"code_server":               p(50),
		"Elixir.MyApp.SlowConsumer": p(51),
		"MyApp.Typed":               p(52),
		"Elixir.MyApp.Typed":        p(53),
		"Elixir.MyApp.Gone":         term.Undefined,
		"a_port":                    term.Port{Node: regNode, ID: 5},
		"my name":                   p(54),
	}
	for _, tt := range []struct {
		in    string
		want  term.Pid
		calls []string
		err   string // "" = resolves
	}{
		{"MyApp.SlowConsumer", p(51), []string{"erlang:registered", "erlang:whereis('Elixir.MyApp.SlowConsumer')"}, ""},
		{"Elixir.MyApp.SlowConsumer", p(51), []string{"erlang:registered", "erlang:whereis('Elixir.MyApp.SlowConsumer')"}, ""},
		{"MyApp.Typed", p(52), []string{"erlang:registered", "erlang:whereis('MyApp.Typed')"}, ""},
		{":code_server", p(50), []string{"erlang:registered", "erlang:whereis(code_server)"}, ""},
		{"code_server", p(50), []string{"erlang:registered", "erlang:whereis(code_server)"}, ""},
		{`:"my name"`, p(54), []string{"erlang:registered", "erlang:whereis('my name')"}, ""},
		{"#PID<9429.60.3>", term.Pid{Node: regNode, ID: 60, Serial: 3, Creation: 77}, []string{"erlang:whereis(init)"}, ""},
		{"<0.60.3>", term.Pid{Node: regNode, ID: 60, Serial: 3, Creation: 77}, []string{"erlang:whereis(init)"}, ""},
		// Names not registered are never sent: no atom is made.
		{"MyApp.Nope", term.Pid{}, []string{"erlang:registered"}, `registered as "MyApp.Nope" or "Elixir.MyApp.Nope"`},
		{":SlowConsumer", term.Pid{}, []string{"erlang:registered"}, `registered as "SlowConsumer"`},
		{"a_port", term.Pid{}, []string{"erlang:registered", "erlang:whereis(a_port)"}, "a port"},
		{"MyApp.Gone", term.Pid{}, []string{"erlang:registered", "erlang:whereis('Elixir.MyApp.Gone')"}, "just unregistered"},
	} {
		c := &registryCaller{names: names}
		sp, err := parseProc(tt.in)
		if err != nil {
			t.Fatalf("parseProc(%q): %v", tt.in, err)
		}
		got, err := resolveProc(context.Background(), c, sp)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("resolveProc(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		case tt.err != "" && (!errors.Is(err, ErrNoProcess) || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("resolveProc(%q) error %v, want ErrNoProcess saying %s", tt.in, err, tt.err)
		}
		if !slices.Equal(c.calls, tt.calls) {
			t.Errorf("resolveProc(%q) calls %v, want %v", tt.in, c.calls, tt.calls)
		}
	}

	// An argument in none of the forms is a usage error before any call.
	c := &registryCaller{names: names}
	for _, args := range [][]string{{"info", "#PID<0.50.0"}, {"info", "evil\x1b]0;x\x07"}} {
		err := Run(context.Background(), c, args, io.Discard)
		var usage *UsageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), "#PID<N.ID.SERIAL>") {
			t.Errorf("Run %q: %v, want a usage error listing the forms", args, err)
		}
		if _, err := Info(context.Background(), c, args[1]); !errors.As(err, &usage) {
			t.Errorf("Info(%q): %v, want a usage error", args[1], err)
		}
	}
	if len(c.calls) != 0 {
		t.Errorf("bad arguments made calls: %v", c.calls)
	}
}

func TestElixirRewrites(t *testing.T) {
	type rw struct{ in, want string }
	for _, fn := range []struct {
		name  string
		f     func(string) string
		cases []rw
	}{
		{"exPid", exPid, []rw{
			{"<0.50.0>", "#PID<0.50.0>"},
			{"<9429.50.0>", "#PID<9429.50.0>"},
			{"", ""},
			{"#PID<0.50.0>", "#PID<0.50.0>"},
			{"#Port<prod@h.5>", "#Port<prod@h.5>"},
			{"<0.50>", "<0.50>"},
			{"<a.b.c>", "<a.b.c>"},
			{"<0.50.0", "<0.50.0"},
			{"<.1.2>", "<.1.2>"},
			{"<" + strings.Repeat("1", 40) + ".1.2>", "<" + strings.Repeat("1", 40) + ".1.2>"},
			{"code_server", "code_server"},
		}},
		{"exAtom", exAtom, []rw{
			{"", ""},
			{"code_server", ":code_server"},
			{"Elixir.MyApp.SlowConsumer", "MyApp.SlowConsumer"},
			{"Elixir.Foo", "Foo"},
			{"Elixir.Foo_1.B2", "Foo_1.B2"},
			{"Elixir", "Elixir"},
			{"Elixir.", `:"Elixir."`},
			{"Elixir.myapp", `:"Elixir.myapp"`},
			{"Elixir.Foo..Bar", `:"Elixir.Foo..Bar"`},
			{"Elixir.Foo.", `:"Elixir.Foo."`},
			{"Elixir.Foo-Bar", `:"Elixir.Foo-Bar"`},
			{"nil", "nil"},
			{"true", "true"},
			{"false", "false"},
			{"undefined", ":undefined"},
			{"Foo", ":Foo"},
			{"MyApp.Worker", `:"MyApp.Worker"`},
			{"_", ":_"},
			{"foo?", ":foo?"},
			{"foo!", ":foo!"},
			{"foo?x", `:"foo?x"`},
			{"foo@bar", ":foo@bar"},
			{"@foo", `:"@foo"`},
			{"9lives", `:"9lives"`},
			{"my name", `:"my name"`},
			{"my-name", `:"my-name"`},
			{"prod@127.0.0.2", `:"prod@127.0.0.2"`},
			{`a"b`, `:"a\"b"`},
			{`a\b`, `:"a\\b"`},
			{"#{System.halt()}", `:"\#{System.halt()}"`},
			{"#x", `:"#x"`},
			{"\x1b[2J", `:"\x1B[2J"`},
			{"a\nb\tc\rd", `:"a\nb\tc\rd"`},
			{"\x00\x7f", `:"\x00\x7F"`},
			{"\u0085\u2028", `:"\u0085\u2028"`},
			{"\xff", `:"\xFF"`},
			{"café", `:"café"`},
		}},
		{"exMFA", exMFA, []rw{
			{"gen_server:loop/7", ":gen_server.loop/7"},
			{"Elixir.Foo:bar/2", "Foo.bar/2"},
			{"Elixir.MyApp.Worker:init/1", "MyApp.Worker.init/1"},
			{"Elixir.Foo:valid?/1", "Foo.valid?/1"},
			{"Elixir.Foo:Bar/0", `Foo."Bar"/0`},
			{"Elixir.Foo:-bar/2-fun-0-/1", "anonymous fn/1 in Foo.bar/2"},
			{"gen_server:-call/3-fun-12-/0", "anonymous fn/0 in :gen_server.call/3"},
			{"Elixir.Foo:-bar/2-lc$^0/1-0-/1", `Foo."-bar/2-lc$^0/1-0-"/1`},
			{"Elixir.Foo:-bar/x-fun-0-/1", `Foo."-bar/x-fun-0-"/1`},
			{"Elixir.Foo:--fun--/1", `Foo."--fun--"/1`},
			{"Elixir.Foo:-fun-0-/1", `Foo."-fun-0-"/1`},
			{"erlang:+/2", `:erlang."+"/2`},
			{"prim_eval:receive/2", ":prim_eval.receive/2"},
			{"my-mod:f/1", `:"my-mod".f/1`},
			{"m:f:g/1", `:m."f:g"/1`},
			{"m:f@x/1", `:m."f@x"/1`},
			{"Elixir.Foo:#{x}/1", `Foo."\#{x}"/1`},
			{"m:\x1b[2J/1", `:m."\x1B[2J"/1`},
			{"undefined", ":undefined"},
			{"Elixir.Foo", "Foo"},
			{"{a,b}", "{a,b}"},
			{"m:f/1234", "m:f/1234"},
			{"m:f/", "m:f/"},
			{"m:f/x", "m:f/x"},
			{":f/1", ":f/1"},
			{"m:/1", "m:/1"},
			{"mf/1", "mf/1"},
			{"", ""},
		}},
		{"exNameOrCall", exNameOrCall, []rw{
			{"code_server", ":code_server"},
			{"Elixir.MyApp.Worker", "MyApp.Worker"},
			{"gen_server:init_it/6", ":gen_server.init_it/6"},
			{"Elixir.MyApp.Worker:init/1", "MyApp.Worker.init/1"},
			{"", ""},
		}},
		{"exTermAtom", exTermAtom, []rw{
			{"vw_worker", ":vw_worker"},
			{"Foo", ":Foo"},
			{"Elixir.MyApp.Repo", "MyApp.Repo"},
			{"{ranch_listener_sup,http}", "{ranch_listener_sup,http}"},
			{"42", "42"},
			{`"str"`, `"str"`},
			{"<<\"b\">>", "<<\"b\">>"},
			{"...", "..."},
			{"my name", "my name"},
			{"", ""},
		}},
		{"exRef", exRef, []rw{
			{"#Ref<0.1.2.3>", "#Reference<0.1.2.3>"},
			{"", ""},
			{"x", "x"},
		}},
		{"exMonitor", exMonitor, []rw{
			{"process <0.1.0>", "process #PID<0.1.0>"},
			{"process {vw_sup,'prod@127.0.0.2'}", `process {:vw_sup, :"prod@127.0.0.2"}`},
			{"process {'Elixir.MyApp.X','prod@h'}", "process {MyApp.X, :prod@h}"},
			{"process {vw_sup,prod@h}", "process {:vw_sup, :prod@h}"},
			{`process {'it\'s','a\\b'}`, `process {:"it's", :"a\\b"}`},
			{`process {'\x{1b}[2J',n@h}`, `process {:"\x1B[2J", :n@h}`},
			{`process {'a\nb',n@h}`, `process {:"a\nb", :n@h}`},
			{"port #Port<prod@h.5>", "port #Port<prod@h.5>"},
			{"process {a,b,c}", "process {a,b,c}"},
			{"process {'unterminated,b}", "process {'unterminated,b}"},
			{`process {'a\`, `process {'a\`},
			{`process {'\x{zz}',b}`, `process {'\x{zz}',b}`},
			{`process {'\x{110000}',b}`, `process {'\x{110000}',b}`},
			{`process {'\x{1b',b}`, `process {'\x{1b',b}`},
			{"process {}", "process {}"},
			{"process {,b}", "process {,b}"},
			{"process {Upper,b}", "process {Upper,b}"},
			{"process", "process"},
			{"", ""},
		}},
		{"exFrame", exFrame, []rw{
			{"gen_server:loop/7 (gen_server.erl:437)", ":gen_server.loop/7 (gen_server.erl:437)"},
			{"Elixir.Foo:bar/2 (lib/foo.ex:12)", "Foo.bar/2 (lib/foo.ex:12)"},
			{"Elixir.Foo:-bar/2-fun-0-/1 (lib/foo.ex:3)", "anonymous fn/1 in Foo.bar/2 (lib/foo.ex:3)"},
			{"Elixir.Foo:bar/2", "Foo.bar/2"},
			{"{weird}", "{weird}"},
			{"{a (b)}", "{a (b)}"},
		}},
	} {
		for _, c := range fn.cases {
			if got := fn.f(c.in); got != c.want {
				t.Errorf("%s(%q) = %q, want %q", fn.name, c.in, got, c.want)
			}
		}
	}

	// Hostile input: long and odd strings cost one pass and come out
	// safe for a terminal where they are quoted.
	for _, in := range []string{strings.Repeat("a", 100000), strings.Repeat("\x1b", 10000),
		strings.Repeat("Elixir.", 10000), strings.Repeat("<0.1.", 10000), strings.Repeat("-fun-", 10000),
		strings.Repeat("'\\", 10000), "\xc3", "#PID<"} {
		for _, f := range []func(string) string{exPid, exAtom, exMFA, exNameOrCall, exTermAtom, exRef, exMonitor, exFrame} {
			_ = f(in)
			_ = f("process {" + in + ",n@h}")
			_ = f("m:" + in + "/1")
		}
		if q := exAtom(in); strings.IndexFunc(q, isControl) >= 0 || !utf8.ValidString(q) {
			t.Errorf("exAtom of hostile input not terminal-safe: %.80q", q)
		}
	}
}

func TestElixirStyleResults(t *testing.T) {
	top := &TopResult{By: "memory", Processes: 3, Sampled: 3, Rows: []ProcRow{
		{Pid: "<0.50.0>", Name: "code_server", CurrentFunction: "code_server:loop/1", Value: 9},
		{Pid: "<0.51.0>", Name: "Elixir.MyApp.Worker:init/1", CurrentFunction: "gen_server:loop/7", Value: 8},
	}}
	bins := &BinariesResult{Processes: 2, Sampled: 2, Rows: []BinRow{
		{Pid: "<0.52.0>", Name: "Elixir.MyApp.Cache", CurrentFunction: "Elixir.MyApp.Cache:handle_info/2", Bytes: 5, Binaries: 1},
	}}
	ets := &ETSResult{By: "memory", Tables: 2, Rows: []TableRow{
		{Name: "big_table", Owner: "<0.53.0>", OwnerName: "table_owner", Type: "set", Size: 1, Memory: 2, Protection: "public"},
		{Name: "Elixir.MyApp.Cache", ID: "#Ref<0.1.2.3>", Owner: "<0.54.0>", Type: "ordered_set", Protection: "protected"},
	}}
	info := &ProcInfo{Pid: "<0.55.0>", RegisteredName: "Elixir.MyApp.SlowConsumer",
		InitialCall: "Elixir.MyApp.SlowConsumer:init/1", CurrentFunction: "gen_server:loop/7",
		Status: "waiting", Priority: "normal", GroupLeader: "<0.40.0>", GC: map[string]int64{"minor_gcs": 1},
		Links: []string{"<0.56.0>", "#Port<prod@h.5>"}, MonitoredBy: []string{"<0.57.0>"},
		Monitors:   []string{"process <0.58.0>", "process {'Elixir.MyApp.Registry','prod@h'}"},
		Stacktrace: []string{"gen_server:loop/7 (gen_server.erl:437)", "proc_lib:init_p_do_apply/3 (proc_lib.erl:226)"}}
	apps := &AppsResult{RestartSource: RestartFromChildspec, Apps: []App{{
		Name: "my_app", Description: "d", Version: "1.0", Master: "<0.60.0>", Supervisor: "<0.61.0>", SupName: "Elixir.MyApp.Supervisor",
		Children: []AppChild{
			{ID: "Elixir.MyApp.Repo", Pid: "<0.62.0>", Name: "Elixir.MyApp.Repo", Type: "worker", Restart: "permanent", Running: true, State: "running"},
			{ID: "Elixir.MyApp.Dead", Type: "worker", Restart: "transient", State: "undefined"},
			{ID: "{pool,1}", Type: "supervisor", Restart: "permanent", Running: true, State: "running", Pid: "<0.63.0>",
				Children: []AppChild{{ID: "worker_1", Type: "worker", State: "undefined"}}},
			{ID: "...", Note: "300 active children, not listed", Running: true, State: "running"},
		},
		NotRunning: []string{"my_app/Elixir.MyApp.Dead", "my_app/{pool,1}/worker_1"},
	}, {Name: "stdlib", Version: "4.0"}}}
	stats := &Stats{WindowMs: 1000, Memory: []MemoryRow{{Type: "total", Bytes: 1}}, UtilisationSource: UtilRuntime}
	cluster := &ClusterResult{Cluster: "eu", Command: "top", By: "memory", Nodes: []ClusterNode{{Node: "a@h", OK: true}},
		Rows: []ClusterProcRow{{Node: "a@h", ProcRow: ProcRow{Pid: "<0.70.0>", Name: "Elixir.MyApp.Worker", CurrentFunction: "gen_server:loop/7"}}}}
	clusterETS := &ClusterResult{Command: "ets", Rows: []ClusterTableRow{{Node: "a@h", TableRow: TableRow{Name: "t", Owner: "<0.71.0>", OwnerName: "o", ID: "#Ref<0.9>"}}}}
	clusterBins := &ClusterResult{Command: "binaries", Rows: []ClusterBinRow{{Node: "a@h", BinRow: BinRow{Pid: "<0.72.0>", Name: "m:f/0", CurrentFunction: "m:f/0"}}}}
	clusterStats := &ClusterResult{Command: "stats", Rows: []ClusterStatsRow{{Node: "a@h", Stats: &Stats{WindowMs: 5}}}}

	for _, tt := range []struct {
		in, want Result
	}{
		{top, &TopResult{By: "memory", Processes: 3, Sampled: 3, Rows: []ProcRow{
			{Pid: "#PID<0.50.0>", Name: ":code_server", CurrentFunction: ":code_server.loop/1", Value: 9},
			{Pid: "#PID<0.51.0>", Name: "MyApp.Worker.init/1", CurrentFunction: ":gen_server.loop/7", Value: 8},
		}}},
		{bins, &BinariesResult{Processes: 2, Sampled: 2, Rows: []BinRow{
			{Pid: "#PID<0.52.0>", Name: "MyApp.Cache", CurrentFunction: "MyApp.Cache.handle_info/2", Bytes: 5, Binaries: 1},
		}}},
		{ets, &ETSResult{By: "memory", Tables: 2, Rows: []TableRow{
			{Name: ":big_table", Owner: "#PID<0.53.0>", OwnerName: ":table_owner", Type: "set", Size: 1, Memory: 2, Protection: "public"},
			{Name: "MyApp.Cache", ID: "#Reference<0.1.2.3>", Owner: "#PID<0.54.0>", Type: "ordered_set", Protection: "protected"},
		}}},
		{info, &ProcInfo{Pid: "#PID<0.55.0>", RegisteredName: "MyApp.SlowConsumer",
			InitialCall: "MyApp.SlowConsumer.init/1", CurrentFunction: ":gen_server.loop/7",
			Status: "waiting", Priority: "normal", GroupLeader: "#PID<0.40.0>", GC: map[string]int64{"minor_gcs": 1},
			Links: []string{"#PID<0.56.0>", "#Port<prod@h.5>"}, MonitoredBy: []string{"#PID<0.57.0>"},
			Monitors:   []string{"process #PID<0.58.0>", "process {MyApp.Registry, :prod@h}"},
			Stacktrace: []string{":gen_server.loop/7 (gen_server.erl:437)", ":proc_lib.init_p_do_apply/3 (proc_lib.erl:226)"}}},
		{apps, &AppsResult{RestartSource: RestartFromChildspec, Apps: []App{{
			Name: "my_app", Description: "d", Version: "1.0", Master: "#PID<0.60.0>", Supervisor: "#PID<0.61.0>", SupName: "MyApp.Supervisor",
			Children: []AppChild{
				{ID: "MyApp.Repo", Pid: "#PID<0.62.0>", Name: "MyApp.Repo", Type: "worker", Restart: "permanent", Running: true, State: "running"},
				{ID: "MyApp.Dead", Type: "worker", Restart: "transient", State: "undefined"},
				{ID: "{pool,1}", Type: "supervisor", Restart: "permanent", Running: true, State: "running", Pid: "#PID<0.63.0>",
					Children: []AppChild{{ID: ":worker_1", Type: "worker", State: "undefined"}}},
				{ID: "...", Note: "300 active children, not listed", Running: true, State: "running"},
			},
			NotRunning: []string{"my_app/MyApp.Dead", "my_app/{pool,1}/:worker_1"},
		}, {Name: "stdlib", Version: "4.0"}}}},
		{stats, &Stats{WindowMs: 1000, Memory: []MemoryRow{{Type: "total", Bytes: 1}}, UtilisationSource: UtilRuntime}},
		{cluster, &ClusterResult{Cluster: "eu", Command: "top", By: "memory", Nodes: []ClusterNode{{Node: "a@h", OK: true}},
			Rows: []ClusterProcRow{{Node: "a@h", ProcRow: ProcRow{Pid: "#PID<0.70.0>", Name: "MyApp.Worker", CurrentFunction: ":gen_server.loop/7"}}}}},
		{clusterETS, &ClusterResult{Command: "ets", Rows: []ClusterTableRow{{Node: "a@h", TableRow: TableRow{Name: ":t", Owner: "#PID<0.71.0>", OwnerName: ":o", ID: "#Reference<0.9>"}}}}},
		{clusterBins, &ClusterResult{Command: "binaries", Rows: []ClusterBinRow{{Node: "a@h", BinRow: BinRow{Pid: "#PID<0.72.0>", Name: ":m.f/0", CurrentFunction: ":m.f/0"}}}}},
		{clusterStats, &ClusterResult{Command: "stats", Rows: []ClusterStatsRow{{Node: "a@h", Stats: &Stats{WindowMs: 5}}}}},
		{(*TopResult)(nil), (*TopResult)(nil)},
		{(*ClusterResult)(nil), (*ClusterResult)(nil)},
	} {
		if got := ElixirStyle(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ElixirStyle(%T):\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
		if reflect.ValueOf(tt.in).IsNil() {
			continue
		}
		if err := tt.in.WriteText(io.Discard); err != nil {
			t.Errorf("WriteText(%T): %v", tt.in, err)
		}
	}
}

// styleCaller answers erlang:function_exported/3 as an Elixir node (or
// an Erlang one, or a policy refusing it) would, counting the calls, and
// every other call as saneReply does.
type styleCaller struct {
	elixir  bool
	deny    bool
	detects atomic.Int64
}

func (s *styleCaller) Call(_ context.Context, m, f term.Atom, args []term.Term) (term.Term, error) {
	if mfaOf(m, f) == "erlang:function_exported" {
		s.detects.Add(1)
		if s.deny {
			return nil, &DeniedError{MFA: "erlang:function_exported/3", Rule: "default", Reason: "not allowed"}
		}
		if len(args) != 3 || args[0] != term.Atom("Elixir.Kernel") || args[1] != term.Atom("__info__") || args[2] != term.Int(1) {
			return nil, fmt.Errorf("unexpected detection %v", args)
		}
		if s.elixir {
			return term.True, nil
		}
		return term.False, nil
	}
	return saneReply(m, f, args), nil
}

func TestRunStyle(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name       string
		nodeElixir bool
		deny       bool
		flags      []string
		elixir     bool
		detects    int64
	}{
		{"erlang node", false, false, nil, false, 1},
		{"elixir node", true, false, nil, true, 1},
		{"--erlang on an elixir node", true, false, []string{"--erlang"}, false, 0},
		{"--elixir on an erlang node", false, false, []string{"--elixir"}, true, 0},
		{"detection refused", true, true, nil, false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &styleCaller{elixir: tt.nodeElixir, deny: tt.deny}
			var out bytes.Buffer
			if err := Run(ctx, c, append([]string{"info", "<0.1.0>", "--json"}, tt.flags...), &out); err != nil {
				t.Fatal(err)
			}
			res := decodeJSON[ProcInfo](t, out.String())
			wantPid, wantCur := "<0.1.0>", "m:f/0"
			if tt.elixir {
				wantPid, wantCur = "#PID<0.1.0>", ":m.f/0"
			}
			if res.Pid != wantPid || res.CurrentFunction != wantCur {
				t.Errorf("json pid %q current %q, want %q %q", res.Pid, res.CurrentFunction, wantPid, wantCur)
			}
			out.Reset()
			if err := Run(ctx, c, append([]string{"top", "-n", "2"}, tt.flags...), &out); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(out.String(), "#PID<0.") && strings.Contains(out.String(), ":x"); got != tt.elixir {
				t.Errorf("top text in Elixir style = %v, want %v:\n%s", got, tt.elixir, out.String())
			}
			if n := c.detects.Load(); n != 2*tt.detects {
				t.Errorf("%d detections for two views, want %d", n, 2*tt.detects)
			}
		})
	}

	var usage *UsageError
	if err := Run(ctx, &styleCaller{}, []string{"stats", "--elixir", "--erlang"}, io.Discard); !errors.As(err, &usage) {
		t.Errorf("--elixir --erlang: %v, want a usage error", err)
	}

	// A watch asks once, however many refreshes it draws.
	c := &styleCaller{elixir: true}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &lineCounter{n: 2, cancel: cancel}
	if err := Run(wctx, c, []string{"info", "x", "--json", "--watch", "1s"}, w); err != nil {
		t.Fatal(err)
	}
	if n := c.detects.Load(); n != 1 || w.lines < 2 || !strings.Contains(w.buf.String(), `"pid":"#PID\u003c0.`) {
		t.Errorf("watch: %d detections over %d refreshes:\n%s", n, w.lines, w.buf.String())
	}
}

// lineCounter cancels after n lines.
type lineCounter struct {
	n, lines int
	cancel   func()
	buf      bytes.Buffer
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.buf.Write(p)
	if l.lines += bytes.Count(p, []byte("\n")); l.lines >= l.n {
		l.cancel()
	}
	return len(p), nil
}

// styledCanned is a cluster member that answers the detection call as
// an Elixir or Erlang node and whose view is canned.
type styledCanned struct {
	styleCaller
	res Result
	err error
}

func styledView(_ context.Context, c Caller) (Result, error) {
	s := c.(*styledCanned)
	return s.res, s.err
}

func TestRunClusterStyle(t *testing.T) {
	member := func(node string, elixir bool, err error) Member {
		return Member{Node: node, Caller: &styledCanned{styleCaller: styleCaller{elixir: elixir}, res: topOf(10, 10, 100), err: err}}
	}
	detects := func(ms []Member) []int64 {
		out := make([]int64, len(ms))
		for i, m := range ms {
			out[i] = m.Caller.(*styledCanned).detects.Load()
		}
		return out
	}
	for _, tt := range []struct {
		name    string
		members []Member
		flags   []string
		elixir  bool
		detects []int64
	}{
		{"all erlang", []Member{member("a@h", false, nil), member("b@h", false, nil)}, nil, false, []int64{1, 1}},
		{"one elixir node", []Member{member("a@h", false, nil), member("b@h", true, nil)}, nil, true, []int64{1, 1}},
		{"--erlang", []Member{member("a@h", true, nil), member("b@h", true, nil)}, []string{"--erlang"}, false, []int64{0, 0}},
		{"--elixir", []Member{member("a@h", false, nil), member("b@h", false, nil)}, []string{"--elixir"}, true, []int64{0, 0}},
		// A node that is down is not asked, and does not count.
		{"elixir node down", []Member{member("a@h", false, nil), member("b@h", true, errors.New("down"))}, nil, false, []int64{1, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runCluster(context.Background(), tt.members, ClusterOptions{}, append([]string{"top", "--json"}, tt.flags...), &out, styledView)
			var partial *PartialError
			if err != nil && !errors.As(err, &partial) {
				t.Fatal(err)
			}
			res := decodeJSON[struct {
				Rows []ClusterProcRow `json:"rows"`
			}](t, out.String())
			if len(res.Rows) == 0 {
				t.Fatalf("no rows: %s", out.String())
			}
			for _, r := range res.Rows {
				if got := strings.HasPrefix(r.Pid, "#PID<") && r.CurrentFunction == ":gen_server.loop/7"; got != tt.elixir {
					t.Errorf("row %+v in Elixir style = %v, want %v", r, got, tt.elixir)
				}
			}
			if got := detects(tt.members); !slices.Equal(got, tt.detects) {
				t.Errorf("detections per node %v, want %v", got, tt.detects)
			}
		})
	}
}

func TestHelpNamesTheStyles(t *testing.T) {
	for _, want := range []string{"--elixir", "--erlang", "#PID<9429.50.0>", "MyApp.Worker", "function_exported"} {
		if !strings.Contains(Help(), want) {
			t.Errorf("Help does not mention %s", want)
		}
	}
	info := CommandHelp("info")
	for _, want := range []string{"#PID<0.50.0>", "<9429.50.0>", "Elixir.MyApp.Worker", "--elixir"} {
		if !strings.Contains(info, want) {
			t.Errorf("CommandHelp(info) does not mention %s:\n%s", want, info)
		}
	}
}

// FuzzParseProc: whatever an engineer types, parseProc neither panics nor
// accepts what it should not, its errors are safe for a terminal, and
// the Elixir rewrites of the same text do not panic.
func FuzzParseProc(f *testing.F) {
	for _, s := range []string{"<0.50.0>", "0.50.0", "<9429.50.0>", "#PID<0.50.0>", "#PID<9429.50.0>",
		"#PID<0.50.0", "MyApp.SlowConsumer", "Elixir.MyApp.X", ":code_server", `:"my name"`, "'my name'",
		"code_server", "gen_server:loop/7", "Elixir.Foo:-bar/2-fun-0-/1", "process {vw_sup,'prod@h'}",
		"#Ref<0.1.2.3>", "evil\x1b[2J", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := parseProc(s)
		if err != nil {
			msg := err.Error()
			if strings.IndexFunc(msg, isControl) >= 0 || !utf8.ValidString(msg) || len(msg) > len(ProcForms)+200 {
				t.Fatalf("unsafe error for %q: %q", s, msg)
			}
		} else if sp.pid {
			if sp.id >= 1<<28 || sp.serial >= 1<<28 || len(sp.names) != 0 {
				t.Fatalf("parseProc(%q) = %+v", s, sp)
			}
			again, err := parseProc(pidText(term.Pid{ID: sp.id, Serial: sp.serial}))
			if err != nil || again.id != sp.id || again.serial != sp.serial {
				t.Fatalf("pid %+v does not read back: %+v %v", sp, again, err)
			}
		} else {
			if len(sp.names) == 0 || len(sp.names) > 2 {
				t.Fatalf("parseProc(%q) = %+v", s, sp)
			}
			for _, n := range sp.names {
				if n == "" || utf8.RuneCountInString(n) > maxAtomChars || !utf8.ValidString(n) || strings.IndexFunc(n, isControl) >= 0 {
					t.Fatalf("parseProc(%q) name %q", s, n)
				}
			}
		}
		for _, fn := range []func(string) string{exPid, exAtom, exMFA, exNameOrCall, exTermAtom, exRef, exMonitor, exFrame} {
			_ = fn(s)
		}
		if q := exAtom(s); strings.IndexFunc(q, isControl) >= 0 || !utf8.ValidString(q) {
			t.Fatalf("exAtom(%q) = %q: not terminal-safe", s, q)
		}
		if m, fun, a, ok := splitMFA(s); ok {
			if q := exMFA(s); strings.IndexFunc(q, isControl) >= 0 || !utf8.ValidString(q) ||
				!strings.HasSuffix(q, "/"+a) && !strings.HasPrefix(q, "anonymous fn/"+a+" in ") {
				t.Fatalf("exMFA(%q) (m %q f %q) = %q", s, m, fun, q)
			}
		}
	})
}
