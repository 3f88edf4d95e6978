package views

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/gateway/dist/client"
	"beamgate/internal/beamtest"
	"beamgate/policy"
)

const (
	testCookie = "views-test-cookie"
	prodName   = "prod@127.0.0.2"
	viewNode   = "beamgate_view@127.0.0.6"
)

// loadSource installs the known load on production: a growing mailbox, a
// process holding a large heap, a busy process, a 100,000-row ETS table
// and a holder of refc binaries. Every culprit is registered.
const loadSource = `
Parent = self(),
Hog = spawn(fun() -> register(mailbox_hog, self()), Parent ! {self(), ready},
    receive never_sent_stop -> ok end end),
receive {Hog, ready} -> ok end,
[Hog ! {work, N} || N <- lists:seq(1, 20000)],
spawn(fun() -> register(mailbox_feeder, self()),
    F = fun F(N) -> Hog ! {work, N}, timer:sleep(2), F(N + 1) end, F(0) end),
Mem = spawn(fun() -> register(memory_hog, self()), L = lists:seq(1, 2000000),
    Parent ! {self(), ready}, receive stop -> length(L) end end),
receive {Mem, ready} -> ok end,
spawn(fun() -> register(busy_hog, self()),
    B = fun B(N) -> _ = lists:sum(lists:seq(1, 5000)),
        case N rem 20 of 0 -> timer:sleep(1); _ -> ok end, B(N + 1) end, B(0) end),
Tab = spawn(fun() -> register(table_owner, self()),
    big_table = ets:new(big_table, [named_table, public, set]),
    true = ets:insert(big_table, [{N, <<"row">>, N} || N <- lists:seq(1, 100000)]),
    true = erlang:garbage_collect(),
    Parent ! {self(), ready}, receive stop -> ok end end),
receive {Tab, ready} -> ok end,
Bin = spawn(fun() -> register(bin_hog, self()),
    Bins = [binary:copy(<<N:8000000>>) || N <- lists:seq(1, 8)],
    true = erlang:garbage_collect(),
    Parent ! {self(), ready}, receive stop -> length(Bins) end end),
receive {Bin, ready} -> ok end,
ok.
`

// The test application: vw_sup (one_for_one) with a permanent worker, a
// transient worker that is terminated (not running), and a sub-supervisor
// with a temporary worker.
var appFiles = map[string]string{
	"vw_app.erl": `-module(vw_app).
-behaviour(application).
-export([start/2, stop/1]).
start(_Type, _Args) -> vw_sup:start_link().
stop(_State) -> ok.
`,
	"vw_sup.erl": `-module(vw_sup).
-behaviour(supervisor).
-export([start_link/0, init/1]).
start_link() -> supervisor:start_link({local, vw_sup}, ?MODULE, []).
init([]) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [#{id => vw_worker, start => {vw_worker, start_link, [vw_worker]}, restart => permanent},
           #{id => vw_dead, start => {vw_worker, start_link, [vw_dead]}, restart => transient},
           #{id => vw_sub_sup, start => {vw_sub_sup, start_link, []}, restart => permanent, type => supervisor}]}}.
`,
	"vw_sub_sup.erl": `-module(vw_sub_sup).
-behaviour(supervisor).
-export([start_link/0, init/1]).
start_link() -> supervisor:start_link({local, vw_sub_sup}, ?MODULE, []).
init([]) ->
    {ok, {#{strategy => one_for_one},
          [#{id => vw_temp, start => {vw_worker, start_link, [vw_temp]}, restart => temporary}]}}.
`,
	"vw_worker.erl": `-module(vw_worker).
-export([start_link/1, init/2]).
start_link(Name) -> proc_lib:start_link(?MODULE, init, [self(), Name]).
init(Parent, Name) ->
    true = register(Name, self()),
    proc_lib:init_ack(Parent, {ok, self()}),
    receive stop -> ok end.
`,
}

const appResource = `{application, vw_app, [{description, "views test app"}, {vsn, "1.0"},
  {modules, [vw_app, vw_sup, vw_sub_sup, vw_worker]}, {registered, [vw_sup, vw_sub_sup]},
  {applications, [kernel, stdlib]}, {mod, {vw_app, []}}]}.
`

// childspecProfile extends readonly with supervisor:get_childspec/2, the
// addition Apps needs for restart types.
const childspecProfile = `name: readonly_childspec
extends: readonly
calls:
  - rule: supervision.childspec
    mfa: [supervisor:get_childspec/2]
    args: [proc, any]
`

type fixture struct {
	prod     *beamtest.Production
	epmdAddr string
	conn     *client.Conn
	logPath  string
	log      *audit.Log
}

// startFixture starts production with the known load and the test
// application, and connects the hidden-node client.
func startFixture(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real BEAM nodes")
	}
	beamtest.RequireErl(t)
	if _, err := exec.LookPath("erlc"); err != nil {
		t.Skip("erlc not found")
	}
	port := beamtest.StartEpmd(t)
	prod := beamtest.StartProduction(t, beamtest.Options{Name: prodName, LongNames: true,
		Cookie: testCookie, BindIP: "127.0.0.2", EpmdPort: port})
	if got := prod.Eval(t, loadSource); got != "ok" {
		t.Fatalf("install load: %s", got)
	}
	ebin := buildApp(t)
	if got := prod.Eval(t, `true = code:add_patha(binary_to_list(`+beamtest.ErlBinary(ebin)+`)), ok = application:start(vw_app), ok = supervisor:terminate_child(vw_sup, vw_dead).`); got != "ok" {
		t.Fatalf("start vw_app: %s", got)
	}
	return connectFixture(t, prod, port)
}

// startPlainFixture starts a production node of kind (beamtest.KindErl
// or beamtest.KindElixir) with beamtest's fixture state only, and
// connects the hidden-node client.
func startPlainFixture(t *testing.T, kind string) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real BEAM nodes")
	}
	beamtest.RequireErl(t)
	if kind == beamtest.KindElixir {
		beamtest.RequireElixir(t)
	}
	port := beamtest.StartEpmd(t)
	prod := beamtest.StartProduction(t, beamtest.Options{Name: prodName, LongNames: true,
		Cookie: testCookie, BindIP: "127.0.0.2", EpmdPort: port, Kind: kind})
	return connectFixture(t, prod, port)
}

// connectFixture connects the hidden-node client to prod (registered
// with the epmd on port) and opens the audit log.
func connectFixture(t *testing.T, prod *beamtest.Production, port int) *fixture {
	t.Helper()
	f := &fixture{prod: prod, epmdAddr: "127.0.0.2:" + strconv.Itoa(port)}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, client.Config{Node: viewNode, Target: prodName, EpmdAddr: f.epmdAddr,
		Cookie: testCookie, Creation: 7, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	f.conn = conn
	f.logPath = filepath.Join(t.TempDir(), "audit.log")
	f.log, err = audit.Open(f.logPath, audit.Options{})
	if err != nil {
		t.Fatalf("audit.Open: %v", err)
	}
	t.Cleanup(func() { f.log.Close() })
	return f
}

// caller returns a PolicedCaller for alice under the named profile.
func (f *fixture) caller(t *testing.T, profile string) *PolicedCaller {
	t.Helper()
	prof, err := policy.Load(profile)
	if err != nil {
		t.Fatalf("policy.Load(%s): %v", profile, err)
	}
	return NewPolicedCaller(f.conn, PolicedConfig{Profile: prof, Engineer: viewNode, EngineerCreation: 7,
		Target: prodName, Audit: f.log, User: "alice", Cluster: "test"})
}

func buildApp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ebin := filepath.Join(dir, "ebin")
	if err := os.Mkdir(ebin, 0o755); err != nil {
		t.Fatal(err)
	}
	var srcs []string
	for name, src := range appFiles {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, p)
	}
	if err := os.WriteFile(filepath.Join(ebin, "vw_app.app"), []byte(appResource), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("erlc", append([]string{"-o", ebin}, srcs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("erlc: %v\n%s", err, out)
	}
	return ebin
}

// auditRecords reads the fixture's audit log.
func (f *fixture) auditRecords(t *testing.T) []audit.Record {
	t.Helper()
	r, err := os.Open(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var recs []audit.Record
	// The views' records only, not the log's own (log_start, checkpoints).
	if err := audit.Query(r, audit.Filter{Event: audit.EventView}, func(rec audit.Record) error {
		recs = append(recs, rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs
}

func runView(t *testing.T, c Caller, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	start := time.Now()
	if err := Run(ctx, c, args, &out); err != nil {
		t.Fatalf("Run %v: %v\noutput:\n%s", args, err, out.String())
	}
	t.Logf("%v took %v", args, time.Since(start).Round(time.Millisecond))
	return out.String()
}

func writeProfile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profile.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
