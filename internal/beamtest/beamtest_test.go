package beamtest

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const engineerHost = "eng-laptop.beamgate.test"

// startCluster starts epmd, a production node on ProductionIP with a long
// name resolved through inetrc, and returns them with the inetrc path.
func startCluster(t *testing.T) (epmdPort int, inetrc string, prod *Production) {
	t.Helper()
	RequireErl(t)
	epmdPort = StartEpmd(t)
	inetrc = WriteInetrc(t, map[string]string{
		ProductionHost: ProductionIP,
		engineerHost:   "127.0.0.1",
	})
	distPort := FreePortOn(t, ProductionIP)
	prod = StartProduction(t, Options{
		Name:      "prod@" + ProductionHost,
		LongNames: true,
		Cookie:    "prod-secret-cookie",
		BindIP:    ProductionIP,
		DistPort:  distPort,
		EpmdPort:  epmdPort,
		Inetrc:    inetrc,
	})
	if got := prod.DistPort(t); got != distPort {
		t.Fatalf("prod.DistPort = %d, want %d", got, distPort)
	}
	return epmdPort, inetrc, prod
}

func TestProductionAndEngineer(t *testing.T) {
	t.Parallel()
	epmdPort, inetrc, prod := startCluster(t)

	if got, want := prod.Name, "prod@"+ProductionHost; got != want {
		t.Fatalf("prod.Name = %q, want %q", got, want)
	}
	if got := prod.Eval(t, `inet:gethostbyname("`+ProductionHost+`")`); !strings.Contains(got, "{127,0,0,2}") {
		t.Fatalf("gethostbyname via inetrc = %s, want {127,0,0,2}", got)
	}
	if got, want := prod.OrdersRows(t), InitialOrders; !slices.Equal(got, want) {
		t.Fatalf("OrdersRows = %q, want %q", got, want)
	}
	if got := prod.StateValue(t); got != InitialState {
		t.Fatalf("StateValue = %q, want %q", got, InitialState)
	}
	if got := prod.Eval(t, `gen_server:call(beamgate_state, get)`); got != InitialState {
		t.Fatalf("gen_server:call get = %q, want %q", got, InitialState)
	}
	before := prod.Snapshot(t)

	eng := Start(t, Options{
		Name:      "eng@" + engineerHost,
		LongNames: true,
		Cookie:    "prod-secret-cookie",
		BindIP:    "127.0.0.1",
		EpmdPort:  epmdPort,
		Inetrc:    inetrc,
		Hidden:    true,
	})
	if got := eng.Eval(t, fmt.Sprintf("net_adm:ping(%s)", prod.Atom())); got != "pong" {
		t.Fatalf("engineer ping = %q, want pong\nprod output:\n%s", got, prod.Output())
	}
	rows := eng.Eval(t, fmt.Sprintf("lists:sort(rpc:call(%s, ets, tab2list, [beamgate_orders]))", prod.Atom()))
	if want := "[" + strings.Join(InitialOrders, ",") + "]"; rows != want {
		t.Fatalf("rpc tab2list = %s, want %s", rows, want)
	}
	// Hidden: the engineer is not in the production node's nodes().
	if got := prod.Eval(t, "nodes()"); got != "[]" {
		t.Fatalf("prod nodes() = %s, want [] (engineer is hidden)", got)
	}
	if got := prod.Eval(t, "nodes(hidden)"); !strings.Contains(got, engineerHost) {
		t.Fatalf("prod nodes(hidden) = %s, want the engineer", got)
	}
	if prod.MarkerExists() {
		t.Fatalf("marker %s exists before any write", prod.MarkerPath)
	}
	if after := prod.Snapshot(t); after != before {
		t.Fatalf("read-only session changed production:\nbefore %s\nafter  %s", before, after)
	}

	// A write does show up in the snapshot, so comparing snapshots means something.
	eng.Eval(t, fmt.Sprintf("rpc:call(%s, file, write_file, [%q, <<\"x\">>])", prod.Atom(), prod.MarkerPath))
	eng.Eval(t, fmt.Sprintf("erlang:send({beamgate_state, %s}, {set, 7})", prod.Atom()))
	// Same sender, same receiver: this call is ordered after the send.
	if got := eng.Eval(t, fmt.Sprintf("gen_server:call({beamgate_state, %s}, get)", prod.Atom())); got != "7" {
		t.Fatalf("remote gen_server:call get after set = %q, want 7", got)
	}
	if !prod.MarkerExists() {
		t.Fatalf("rpc file:write_file did not create %s", prod.MarkerPath)
	}
	if got := prod.StateValue(t); got != "7" {
		t.Fatalf("StateValue after remote set = %q, want 7", got)
	}
	if after := prod.Snapshot(t); after == before {
		t.Fatalf("Snapshot did not change after writes: %s", after)
	}
}

func TestWrongCookieRefused(t *testing.T) {
	t.Parallel()
	epmdPort, inetrc, prod := startCluster(t)
	eng := Start(t, Options{
		Name: "eng@" + engineerHost, LongNames: true, Cookie: "wrong-cookie",
		BindIP: "127.0.0.1", EpmdPort: epmdPort, Inetrc: inetrc, Hidden: true,
	})
	if got := eng.Eval(t, fmt.Sprintf("net_adm:ping(%s)", prod.Atom())); got != "pang" {
		t.Fatalf("ping with wrong cookie = %q, want pang", got)
	}
	if strings.Contains(eng.Output(), "prod-secret-cookie") {
		t.Fatalf("engineer output leaks the production cookie:\n%s", eng.Output())
	}
}

func TestElixirEngineer(t *testing.T) {
	t.Parallel()
	RequireElixir(t)
	epmdPort, inetrc, prod := startCluster(t)
	eng := Start(t, Options{
		Kind: KindElixir, Name: "iex@" + engineerHost, LongNames: true, Cookie: "prod-secret-cookie",
		BindIP: "127.0.0.1", EpmdPort: epmdPort, Inetrc: inetrc, Hidden: true,
	})
	if got := eng.Eval(t, fmt.Sprintf("net_adm:ping(%s)", prod.Atom())); got != "pong" {
		t.Fatalf("elixir engineer ping = %q, want pong", got)
	}
	code := fmt.Sprintf(":rpc.call(:%q, :ets, :lookup, [:beamgate_orders, 1])", prod.Name)
	if got, want := eng.EvalElixir(t, code), `[{1, "widget", 3}]`; got != want {
		t.Fatalf("EvalElixir(%s) = %s, want %s", code, got, want)
	}
}

func TestEvalProtocol(t *testing.T) {
	t.Parallel()
	RequireErl(t)
	n := Start(t, Options{EvalTimeout: 2 * time.Second})
	if n.Name != "nonode@nohost" {
		t.Fatalf("Name = %q, want nonode@nohost", n.Name)
	}

	tests := []struct {
		name, expr, want string
	}{
		{"arith", "1 + 2", "3"},
		{"dot optional", "1 + 2.", "3"},
		{"multi expr", "X = 20, X * 2 + 2", "42"},
		{"comment", "ok % trailing comment", "ok"},
		{"one line", "lists:seq(1, 40)", "[" + seqList(40) + "]"},
		{"utf8 binary", `<<"héllo"/utf8>>`, `<<"héllo"/utf8>>`},
		{"latin1 string", `"héllo"`, `"héllo"`},
		{"newline in string", `"a\nb"`, `"a\nb"`},
		{"exception", "1 / 0", "{beamtest_error,error,badarith}"},
		{"throw", "throw(nope)", "{beamtest_error,throw,nope}"},
		{"eval process killed", "exit(self(), kill)", "{beamtest_error,exit,killed}"},
		{"syntax error", "foo(", "{beamtest_error,error,{parse_error,"},
	}
	for _, tt := range tests {
		got := n.Eval(t, tt.expr)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: Eval(%q) = %s, want %s", tt.name, tt.expr, got, tt.want)
		}
	}

	if _, err := n.EvalErr("erlang:error(boom)"); !errors.As(err, new(*EvalError)) {
		t.Errorf("EvalErr(error(boom)) err = %v, want *EvalError", err)
	}
	if got := n.EvalString(t, `["multi", $\n, <<"line">>]`); got != "multi\nline" {
		t.Errorf("EvalString = %q, want %q", got, "multi\nline")
	}
	if _, err := n.EvalErr("timer:sleep(infinity)"); !errors.Is(err, ErrEvalTimeout) {
		t.Errorf("EvalErr(sleep) err = %v, want ErrEvalTimeout", err)
	}
	// A hung request does not block the others.
	if got := n.Eval(t, "still_alive"); got != "still_alive" {
		t.Errorf("Eval after timeout = %q", got)
	}

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if got, err := n.EvalErr(fmt.Sprintf("%d * 2", i)); err != nil || got != fmt.Sprint(i*2) {
				t.Errorf("concurrent eval %d = %q, %v", i, got, err)
			}
		})
	}
	wg.Wait()

	n.Eval(t, `io:format("hello from the node~n")`)
	if out := n.Output(); !strings.Contains(out, "hello from the node") || !strings.Contains(out, "still_alive") {
		t.Errorf("Output lacks node output or replies:\n%s", out)
	}

	n.Kill()
	if _, err := n.EvalErr("ok"); !errors.Is(err, ErrAgentDead) {
		t.Errorf("EvalErr after Kill err = %v, want ErrAgentDead", err)
	}
}

func TestNodeDiesWithTest(t *testing.T) {
	t.Parallel()
	RequireErl(t)
	var pid int
	t.Run("inner", func(t *testing.T) {
		n := Start(t, Options{})
		pid = n.cmd.Process.Pid
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("node pid %d still exists after its test ended (kill 0: %v)", pid, err)
	}
}

func TestWriteInetrc(t *testing.T) {
	path := WriteInetrc(t, map[string]string{"b.test": "127.0.0.3", "a.test": "127.0.0.2"})
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "{host, {127,0,0,2}, [\"a.test\"]}.\n{host, {127,0,0,3}, [\"b.test\"]}.\n{lookup, [file, native]}.\n"
	if string(got) != want {
		t.Fatalf("inetrc =\n%s\nwant\n%s", got, want)
	}
}

func TestErlAtom(t *testing.T) {
	tests := []struct{ in, want string }{
		{"prod@prod-01.beamgate.test", "'prod@prod-01.beamgate.test'"},
		{`it's`, `'it\'s'`},
		{`back\slash`, `'back\\slash'`},
	}
	for _, tt := range tests {
		if got := ErlAtom(tt.in); got != tt.want {
			t.Errorf("ErlAtom(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func seqList(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprint(i + 1)
	}
	return strings.Join(parts, ",")
}

func TestShortNames(t *testing.T) {
	t.Parallel()
	RequireErl(t)
	epmdPort := StartEpmd(t)
	a := Start(t, Options{Name: "a@localhost", EpmdPort: epmdPort})
	b := Start(t, Options{Name: "b@localhost", EpmdPort: epmdPort})
	if got := b.Eval(t, fmt.Sprintf("net_adm:ping(%s)", a.Atom())); got != "pong" {
		t.Fatalf("short-name ping = %q, want pong", got)
	}
	if got := a.Eval(t, "nodes()"); got != "[b@localhost]" {
		t.Fatalf("a nodes() = %s, want [b@localhost]", got)
	}
}
