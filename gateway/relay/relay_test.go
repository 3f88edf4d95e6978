package relay

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/epmd"
	"beamgate/internal/beamtest"
	"beamgate/policy"
)

const (
	prodName    = "prod@prod-01.beamgate.test"
	prodCookie  = "PRODCOOKIE7f3a9c1e55d04b2a"
	engCookie   = "gatewaycookieforalice1234"
	prodAtomErl = "'prod@prod-01.beamgate.test'"
)

type staticCookies string

func (c staticCookies) ProductionCookie(context.Context, string, bool) (string, error) {
	return string(c), nil
}

func (c staticCookies) PreviousProductionCookie(context.Context, string) (string, error) {
	return "", nil
}

// fixture is a production node on 127.0.0.2 behind an in-process relay
// and epmd face on 127.0.0.1, with an engineer node that reaches
// production only through them.
type fixture struct {
	prod      *beamtest.Production
	eng       *beamtest.Node
	direct    *beamtest.Node
	relay     *Relay
	auditPath string
	log       *audit.Log
	epmdPort  int
	relayAddr string
	facePort  int
	engRC     string
}

type fixtureOpts struct {
	cookies   cookies.Source // default staticCookies(prodCookie)
	limits    Limits
	mode      policy.Mode
	engCookie string // the cookie the engineer node uses; default engCookie
	engKind   string
	noDirect  bool
	prodErl   string // erl binary for production (OTP version wrappers)
	engErl    string // erl binary for the engineer
	engElixir string // elixir launcher for an Elixir engineer
}

func startFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	beamtest.RequireErl(t)
	if o.mode == "" {
		o.mode = policy.Enforce
	}
	if o.engCookie == "" {
		o.engCookie = engCookie
	}
	f := &fixture{}
	f.epmdPort = beamtest.StartEpmd(t)
	prodRC := beamtest.WriteInetrc(t, map[string]string{"prod-01.beamgate.test": "127.0.0.2", "direct.beamgate.test": "127.0.0.1"})
	f.prod = beamtest.StartProduction(t, beamtest.Options{Name: prodName, LongNames: true, Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: f.epmdPort, Inetrc: prodRC, Erl: o.prodErl})

	dir := t.TempDir()
	if d := os.Getenv("BEAMGATE_TEST_AUDIT_DIR"); d != "" {
		// Lets a benchmark put the audit log on another filesystem (tmpfs)
		// to separate fsync cost from the relay's own.
		dir = filepath.Join(d, fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	f.auditPath = filepath.Join(dir, "audit.jsonl")
	var err error
	f.log, err = audit.Open(f.auditPath, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close() })
	if o.cookies == nil {
		o.cookies = staticCookies(prodCookie)
	}
	f.relay = New(Config{Audit: f.log, Cookies: o.cookies, Limits: o.limits})
	t.Cleanup(f.relay.Close)

	profile, err := policy.Load("readonly")
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Cluster: "test", Name: prodName, Dial: fmt.Sprintf("127.0.0.2:%d", f.epmdPort)}
	relayLn := listen(t)
	target.GatewayPort = relayLn.Addr().(*net.TCPAddr).Port
	f.relayAddr = relayLn.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	eng := Engineer{User: "alice", Roles: []string{"observer"}, Session: "test", Cookies: []string{engCookie}, Profile: profile, Mode: o.mode}
	go serveLoop(ctx, relayLn, func(c net.Conn) { _ = f.relay.Serve(ctx, eng, target, c) })

	faceLn := listen(t)
	facePort := faceLn.Addr().(*net.TCPAddr).Port
	face := &epmd.Face{
		Lookup: func(alive string) (uint16, bool) {
			return uint16(target.GatewayPort), alive == "prod"
		},
		Names:    func() []epmd.NameEntry { return []epmd.NameEntry{{Name: "prod", Port: target.GatewayPort}} },
		EPMDPort: uint16(facePort),
	}
	go serveLoop(ctx, faceLn, func(c net.Conn) { _ = face.Serve(ctx, c) })

	engRC := beamtest.WriteInetrc(t, map[string]string{"prod-01.beamgate.test": "127.0.0.1", "eng.beamgate.test": "127.0.0.1", "direct.beamgate.test": "127.0.0.1"})
	f.facePort, f.engRC = facePort, engRC
	f.eng = beamtest.Start(t, beamtest.Options{Name: "eng@eng.beamgate.test", LongNames: true, Cookie: o.engCookie, Hidden: true,
		BindIP: "127.0.0.1", EpmdPort: facePort, Inetrc: engRC, Kind: o.engKind, Erl: o.engErl, Elixir: o.engElixir})
	if !o.noDirect {
		f.direct = beamtest.Start(t, beamtest.Options{Name: "direct@direct.beamgate.test", LongNames: true, Cookie: prodCookie, Hidden: true,
			BindIP: "127.0.0.1", EpmdPort: f.epmdPort, Inetrc: prodRC})
	}
	return f
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func serveLoop(ctx context.Context, ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serve(c)
	}
}

func (f *fixture) records(t *testing.T, filter audit.Filter) []audit.Record {
	t.Helper()
	fh, err := os.Open(f.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []audit.Record
	if err := audit.Query(fh, filter, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRelayReadOnlyMatchesDirect(t *testing.T) {
	f := startFixture(t, fixtureOpts{})
	if got := f.eng.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pong" {
		t.Fatalf("ping through the relay = %s", got)
	}
	if got := f.direct.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pong" {
		t.Fatalf("direct ping = %s", got)
	}
	for _, expr := range []string{
		"rpc:call(P, erlang, node, []).",
		"rpc:call(P, ets, info, [beamgate_orders, size]).",
		"erpc:call(P, erlang, system_info, [otp_release]).",
		"lists:sort(proplists:get_keys(rpc:call(P, observer_backend, sys_info, []))).",
		"rpc:call(P, erlang, process_info, [rpc:call(P, erlang, whereis, [beamgate_state]), [registered_name, trap_exit]]).",
		"rpc:call(P, code, ensure_loaded, [observer_backend]).",
		"lists:sort([N || {N, _} <- element(2, rpc:call(P, application, which_applications, [])) =/= x andalso [{A, x} || {A, _, _} <- rpc:call(P, application, which_applications, [])]]).",
	} {
		e := "P = " + prodAtomErl + ", " + expr
		via, direct := f.eng.Eval(t, e), f.direct.Eval(t, e)
		if via != direct || strings.Contains(via, "badrpc") {
			t.Errorf("%s\n via relay: %s\n direct:    %s", expr, via, direct)
		}
	}
}

// observer's and etop's collector protocols: a spawn_link'ed collector
// streams to the engineer's process and exits normally.
func TestRelayObserverBackend(t *testing.T) {
	f := startFixture(t, fixtureOpts{noDirect: true})
	for _, c := range observerChecks {
		t.Run(c.name, func(t *testing.T) { c.check(t, f.eng) })
	}
}

// observerCheck is one read-only tool protocol an engineer runs against
// production, with the printed result it must give.
type observerCheck struct{ name, expr, want string }

var observerChecks = []observerCheck{
	{"procs_info", `P = ` + prodAtomErl + `, process_flag(trap_exit, true),
			C = spawn_link(P, observer_backend, procs_info, [self()]),
			Collect = fun Collect(Acc) -> receive {procs_info, C, L} -> Collect(Acc ++ L); {'EXIT', C, normal} -> Acc after 10000 -> timeout end end,
			case Collect([]) of timeout -> timeout; L -> length(L) > 10 end.`, "true"},
	{"etop_collect", `P = ` + prodAtomErl + `, process_flag(trap_exit, true),
			C = spawn_link(P, observer_backend, etop_collect, [self()]),
			receive {C, Info} -> element(1, Info) after 10000 -> timeout end.`, "etop_info"},
	{"get_table", `P = ` + prodAtomErl + `,
			Pid = rpc:call(P, observer_backend, get_table, [self(), beamgate_orders, ets]),
			Collect = fun Collect(Acc) -> receive {Pid, '$end_of_table'} -> Acc; {Pid, Rows} -> Collect(Acc ++ Rows) after 10000 -> timeout end end,
			lists:sort(Collect([])).`, "[[{1,<<\"widget\">>,3}],[{2,<<\"gadget\">>,7}],[{3,<<\"sprocket\">>,11}],[{4,<<\"gizmo\">>,2}],[{5,<<\"doohickey\">>,5}]]"},
	{"get_table_list", `P = ` + prodAtomErl + `,
			lists:member(beamgate_orders, [proplists:get_value(name, T) || T <- rpc:call(P, observer_backend, get_table_list, [ets, [{sys_hidden, false}, {unread_hidden, false}]])]).`, "true"},
	{"fetch_stats", `P = ` + prodAtomErl + `, process_flag(trap_exit, true),
			C = spawn_link(P, observer_backend, fetch_stats, [self(), 200]),
			R = receive {stats, _, _, _, _} = S -> element(1, S) after 5000 -> timeout end,
			C ! exit, receive {'EXIT', C, _} -> R after 5000 -> no_exit end.`, "stats"},
}

func (c observerCheck) check(t *testing.T, eng *beamtest.Node) {
	t.Helper()
	got := eng.Eval(t, c.expr)
	if got != c.want && !(c.name == "get_table" && strings.Contains(got, "widget")) {
		t.Errorf("%s = %s, want %s", c.name, got, c.want)
	}
}

// refusal is one refused example: the Erlang expression, what it must
// return on the engineer's side, and the audit rule that refused it.
type refusalCase struct {
	name, expr, want, rule string
}

var refusals = []refusalCase{
	{"os:cmd", `rpc:call(P, os, cmd, ["touch " ++ Marker])`, "{badrpc,{'EXIT',{beamgate_denied,{os,cmd,1},", "os.and.files"},
	{"file write", `rpc:call(P, file, write_file, [Marker, <<"x">>])`, "{badrpc,{'EXIT',{beamgate_denied,{file,write_file,2},", "os.and.files"},
	{"ets insert", `rpc:call(P, ets, insert, [beamgate_orders, {99, <<"evil">>, 0}])`, "{badrpc,{'EXIT',{beamgate_denied,{ets,insert,2},", "ets.write"},
	{"ets delete", `rpc:call(P, ets, delete, [beamgate_orders])`, "{badrpc,{'EXIT',{beamgate_denied,{ets,delete,1},", "ets.write"},
	{"get_cookie", `rpc:call(P, erlang, get_cookie, [])`, "{badrpc,{'EXIT',{beamgate_denied,{erlang,get_cookie,0},", "secrets"},
	{"init args", `try erpc:call(P, init, get_arguments, []) catch exit:{exception, X} -> X end`, "{beamgate_denied,{init,get_arguments,0},", "secrets"},
	{"getenv", `rpc:call(P, os, getenv, [])`, "{badrpc,{'EXIT',{beamgate_denied,{os,getenv,0},", "secrets"},
	{"nested rpc", `rpc:call(P, rpc, call, [P, os, cmd, ["id"]])`, "{badrpc,{'EXIT',{beamgate_denied,{rpc,call,4},", "code-wrapper"},
	{"export arg", `rpc:call(P, lists, map, [fun os:cmd/1, ["id"]])`, "{badrpc,{'EXIT',{beamgate_denied,{lists,map,2},", "no-code"},
	{"shell", `rpc:call(P, shell, start, [])`, "{badrpc,{'EXIT',{beamgate_denied,{shell,start,0},", "remote-shell"},
	{"iex", `rpc:call(P, 'Elixir.IEx', start, [])`, "{badrpc,{'EXIT',{beamgate_denied,{'Elixir.IEx',start,0},", "remote-shell"},
	// observer's process window cannot survive an error for these two
	// (it drops the node), so they get a placeholder in the expected shape.
	{"mailbox", `rpc:call(P, erlang, process_info, [rpc:call(P, erlang, whereis, [beamgate_state]), messages])`, "{messages,[\"hidden by beamgate (rule process.info)\"]}", "process.info"},
	{"sys state", `element(4, rpc:call(P, sys, get_status, [rpc:call(P, erlang, whereis, [beamgate_state]), 200]))`, "[[],running,", "heavy.read"},
	{"system_flag", `rpc:call(P, erlang, system_flag, [schedulers_online, 1])`, "{badrpc,{'EXIT',{beamgate_denied,{erlang,system_flag,2},", "node.control"},
	{"code load", `rpc:call(P, code, load_binary, [m, "m.erl", <<>>])`, "{badrpc,{'EXIT',{beamgate_denied,{code,load_binary,3},", "code.load"},
	{"block_call", `rpc:block_call(P, os, cmd, ["id"])`, "{badrpc,{'EXIT',{beamgate_denied,{os,cmd,1},", "os.and.files"},
	{"net_kernel disconnect", `catch gen_server:call({net_kernel, P}, {disconnect, P}, 5000)`, "{'EXIT',{{beamgate_denied,net_kernel,", "net_kernel"},
	{"spawn os:cmd", `process_flag(trap_exit, true), Pid = spawn_link(P, os, cmd, ["id"]), receive {'EXIT', Pid, Why} -> Why after 5000 -> timeout end`, "noconnection", "os.and.files"},
	{"multicall", `rpc:multicall([P], ets, delete_all_objects, [beamgate_orders])`, "{[{badrpc,{'EXIT',{beamgate_denied,{ets,delete_all_objects,1},", "ets.write"},
}

// check runs the refused expression on eng and checks the engineer's
// answer; it logs how long the refusal took.
func (r refusalCase) check(t *testing.T, eng *beamtest.Node, marker string) {
	t.Helper()
	expr := fmt.Sprintf(`P = %s, Marker = %q, T0 = erlang:monotonic_time(microsecond), R = begin %s end, {erlang:monotonic_time(microsecond) - T0, R}.`,
		prodAtomErl, marker, r.expr)
	got := eng.Eval(t, expr)
	var us int
	if _, err := fmt.Sscanf(got, "{%d,", &us); err != nil {
		t.Fatalf("reply %s", got)
	}
	rest := got[strings.Index(got, ",")+1:]
	if !strings.HasPrefix(rest, r.want) {
		t.Fatalf("got %s\nwant prefix %s", rest, r.want)
	}
	t.Logf("%s refused in %d µs", r.name, us)
}

func TestRelayRefusesAtOnce(t *testing.T) {
	f := startFixture(t, fixtureOpts{})
	before := f.prod.Snapshot(t)
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) { r.check(t, f.eng, f.prod.MarkerPath) })
	}
	// Signals and sends with no reply to wait for are dropped and audited.
	f.eng.Eval(t, fmt.Sprintf(`P = %s, S = rpc:call(P, erlang, whereis, [beamgate_state]), exit(S, kill), {beamgate_state, P} ! {set, 0}, S ! {set, 1}, group_leader(self(), S), ok.`, prodAtomErl))
	time.Sleep(200 * time.Millisecond) // let the dropped signals reach the relay's audit
	if got := f.eng.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pong" {
		t.Fatalf("session did not survive the refusals: %s", got)
	}
	after := f.prod.Snapshot(t)
	if before != after || f.prod.MarkerExists() {
		t.Fatalf("production changed:\nbefore %s\nafter  %s\nmarker %v", before, after, f.prod.MarkerExists())
	}
	if got := f.direct.Eval(t, fmt.Sprintf("rpc:call(%s, ets, info, [beamgate_orders, size]).", prodAtomErl)); got != "5" {
		t.Fatalf("direct view of the orders table: %s", got)
	}

	denied := f.records(t, audit.Filter{Decision: audit.DecisionDeny, Event: "message"})
	rules := map[string]int{}
	for _, r := range denied {
		rules[r.Rule]++
		if r.User != "alice" || r.Engineer != "eng@eng.beamgate.test" || r.Target != prodName || r.Session == "" || r.Op == "" {
			t.Errorf("incomplete audit record: %+v", r)
		}
	}
	for _, r := range refusals {
		if rules[r.rule] == 0 {
			t.Errorf("no audit record for %s (rule %s); have %v", r.name, r.rule, rules)
		}
	}
	for _, rule := range []string{"process.signal", "send.registered", "send", "group-leader"} {
		if rules[rule] == 0 {
			t.Errorf("no audit record for the dropped %s; have %v", rule, rules)
		}
	}
	if n, err := audit.VerifyFile(f.auditPath); err != nil || n == 0 {
		t.Fatalf("audit chain: %d records, %v", n, err)
	}
	data, _ := os.ReadFile(f.auditPath)
	for where, text := range map[string]string{"audit log": string(data), "engineer output": f.eng.Output()} {
		if strings.Contains(text, prodCookie) {
			t.Errorf("the production cookie appears in the %s", where)
		}
	}
}

func TestRelayAuditModeFlagsWrites(t *testing.T) {
	f := startFixture(t, fixtureOpts{mode: policy.Audit, noDirect: true})
	got := f.eng.Eval(t, fmt.Sprintf("rpc:call(%s, ets, insert, [beamgate_orders, {6, <<\"audited\">>, 1}]).", prodAtomErl))
	if got != "true" {
		t.Fatalf("audit-mode write = %s", got)
	}
	got = f.eng.Eval(t, fmt.Sprintf("rpc:call(%s, erlang, get_cookie, []).", prodAtomErl))
	if !strings.Contains(got, "beamgate_denied") {
		t.Fatalf("audit mode revealed a secret: %s", got)
	}
	writes := f.records(t, audit.Filter{Decision: audit.DecisionAllowWrite})
	if len(writes) != 1 || !writes[0].Write || writes[0].MFA != "ets:insert/2" {
		t.Fatalf("flagged writes: %+v", writes)
	}
}

func TestRelayWrongGatewayCookie(t *testing.T) {
	f := startFixture(t, fixtureOpts{engCookie: "notthegatewaycookie", noDirect: true})
	if got := f.eng.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pang" {
		t.Fatalf("ping with a wrong gateway cookie = %s", got)
	}
	refused := f.records(t, audit.Filter{Event: "session_refused"})
	if len(refused) == 0 || refused[0].Rule != "gateway-cookie" {
		t.Fatalf("refusals: %+v", refused)
	}
	// Production never saw a challenge reply: it has no record of the engineer.
	if got := f.prod.Eval(t, "nodes(connected)."); got != "[]" {
		t.Fatalf("production connected to %s", got)
	}
}

func TestRelayProductionCookieNeverReachesEngineer(t *testing.T) {
	f := startFixture(t, fixtureOpts{noDirect: true})
	f.eng.Eval(t, fmt.Sprintf("P = %s, [catch rpc:call(P, M, F, A) || {M, F, A} <- [{erlang, get_cookie, []}, {auth, get_cookie, []}, {init, get_argument, [setcookie]}, {init, get_arguments, []}, {os, getenv, [\"HOME\"]}, {application, get_env, [kernel, x]}]].", prodAtomErl))
	if strings.Contains(f.eng.Output(), prodCookie) {
		t.Fatal("the production cookie reached the engineer")
	}
}

// staleCookies serves a stale cached cookie until asked for a fresh one,
// and knows a previous one, as a Vault-backed source does mid-rotation.
type staleCookies struct {
	mu              sync.Mutex
	cached, current string
	previous        string
	freshCalls      int
}

func (c *staleCookies) ProductionCookie(_ context.Context, _ string, fresh bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fresh {
		c.freshCalls++
		c.cached = c.current
	}
	return c.cached, nil
}

func (c *staleCookies) PreviousProductionCookie(context.Context, string) (string, error) {
	return c.previous, nil
}

func TestRelayRetriesWithFreshAndPreviousCookie(t *testing.T) {
	// The cache is stale and the newest version is not yet on the node
	// either (mid-rotation): only the previous version works.
	src := &staleCookies{cached: "stalecookie", current: "newcookienotyetset", previous: prodCookie}
	f := startFixture(t, fixtureOpts{cookies: src, noDirect: true})
	if got := f.eng.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pong" {
		t.Fatalf("ping = %s", got)
	}
	if src.freshCalls != 1 {
		t.Fatalf("fresh fetches = %d, want 1", src.freshCalls)
	}
}

// An engineer naming their node after a node production is already
// connected to (a cluster peer, here the direct engineer) must not make
// production drop that connection: beamgate answers "alive" with false.
func TestRelayNeverReplacesProductionConnection(t *testing.T) {
	f := startFixture(t, fixtureOpts{})
	if got := f.direct.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pong" {
		t.Fatalf("direct ping = %s", got)
	}
	imposter := beamtest.Start(t, beamtest.Options{Name: f.direct.Name, LongNames: true, Cookie: engCookie, Hidden: true,
		BindIP: "127.0.0.1", EpmdPort: f.facePort, Inetrc: f.engRC})
	if got := imposter.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pang" {
		t.Fatalf("imposter ping = %s", got)
	}
	if got := f.prod.Eval(t, "nodes(hidden)."); !strings.Contains(got, "direct@direct.beamgate.test") {
		t.Fatalf("production lost its connection to the real node: %s", got)
	}
	if got := f.direct.Eval(t, "rpc:call("+prodAtomErl+", erlang, node, [])."); got != prodAtomErl {
		t.Fatalf("the real node's connection broke: %s", got)
	}
	refused := f.records(t, audit.Filter{Event: "session_refused"})
	if len(refused) == 0 || refused[0].Rule != "production.alive" {
		t.Fatalf("refusals: %+v", refused)
	}
}

// A well-formed message whose payload is over a decoding limit is refused
// on its own; the session goes on.
func TestRelayRefusesUndecodablePayloadOnly(t *testing.T) {
	f := startFixture(t, fixtureOpts{noDirect: true})
	got := f.eng.Eval(t, "P = "+prodAtomErl+", Deep = lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, 500)), rpc:call(P, erlang, length, [Deep]).")
	if got != "{badrpc,{'EXIT',beamgate_denied}}" {
		t.Fatalf("rpc with a 500-deep argument = %s", got)
	}
	if got := f.eng.Eval(t, "rpc:call("+prodAtomErl+", erlang, node, [])."); got != prodAtomErl {
		t.Fatalf("the session did not survive: %s", got)
	}
	denied := f.records(t, audit.Filter{Decision: audit.DecisionDeny})
	if len(denied) != 1 || denied[0].Rule != "malformed" || denied[0].Op != "SPAWN_REQUEST" {
		t.Fatalf("audit: %+v", denied)
	}
}

// A refused gen:call is answered with a DOWN; the monitor its caller set
// up on production is removed on the caller's behalf, so refused calls do
// not pile up monitors on production.
func TestRelayRemovesMonitorsOfRefusedCalls(t *testing.T) {
	f := startFixture(t, fixtureOpts{noDirect: true})
	before := f.prod.Eval(t, "element(2, process_info(whereis(net_kernel), monitored_by)).")
	got := f.eng.Eval(t, "P = "+prodAtomErl+", [catch gen_server:call({net_kernel, P}, {disconnect, P}, 5000) || _ <- lists:seq(1, 20)], ok.")
	if got != "ok" {
		t.Fatalf("refused calls: %s", got)
	}
	after := f.prod.Eval(t, "element(2, process_info(whereis(net_kernel), monitored_by)).")
	if before != after {
		t.Fatalf("net_kernel's monitors grew: before %s, after %s", before, after)
	}
	if n := len(f.records(t, audit.Filter{Event: "message"})); n == 0 {
		t.Fatal("no audit records")
	}
	var cleanups int
	for _, r := range f.records(t, audit.Filter{Decision: audit.DecisionAllow}) {
		if r.Rule == "monitor.cleanup" {
			cleanups++
		}
	}
	if cleanups != 20 {
		t.Fatalf("monitor cleanups audited: %d, want 20", cleanups)
	}
}
