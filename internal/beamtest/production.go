package beamtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The production fixture's known state.
const (
	// OrdersTable is the named public ETS table StartProduction fills.
	OrdersTable = "beamgate_orders"
	// StateProcess is the registered process holding the known state term.
	StateProcess = "beamgate_state"
	// InitialState is the printed initial state of StateProcess.
	InitialState = "42"
)

// InitialOrders are the printed rows of OrdersTable, sorted, as
// Production.OrdersRows returns them right after StartProduction.
var InitialOrders = []string{
	`{1,<<"widget">>,3}`,
	`{2,<<"gadget">>,7}`,
	`{3,<<"sprocket">>,11}`,
	`{4,<<"gizmo">>,2}`,
	`{5,<<"doohickey">>,5}`,
}

// Production is a node with checkable state, standing in for a production
// BEAM node behind the gateway.
//
// One long-lived process (not the agent's eval process) owns OrdersTable and
// is registered as StateProcess. It answers:
//
//	{get, From}                        -> From ! {beamgate_state, State}
//	{set, Value}                       -> State := Value
//	gen_server:call(beamgate_state, get) -> State
//	gen_server:cast(beamgate_state, {set, Value})
//
// MarkerPath is a file that does not exist: tests check that a refused
// file:write_file(MarkerPath, ...) did not create it.
type Production struct {
	*Node
	MarkerPath string
}

// stateOwnerSource spawns the fixture process and waits until it owns the
// table and its registered name. %s is the initial state.
const stateOwnerSource = `
Parent = self(),
Owner = spawn(fun() ->
    beamgate_orders = ets:new(beamgate_orders, [named_table, public, set]),
    true = ets:insert(beamgate_orders, [{1, <<"widget">>, 3}, {2, <<"gadget">>, 7},
        {3, <<"sprocket">>, 11}, {4, <<"gizmo">>, 2}, {5, <<"doohickey">>, 5}]),
    true = register(beamgate_state, self()),
    Parent ! {self(), beamgate_ready},
    Loop = fun Loop(S) ->
        receive
            {get, From} when is_pid(From) -> From ! {beamgate_state, S}, Loop(S);
            {set, V} -> Loop(V);
            {'$gen_call', From, get} -> gen_server:reply(From, S), Loop(S);
            {'$gen_cast', {set, V}} -> Loop(V);
            _ -> Loop(S)
        end
    end,
    Loop(%s)
end),
receive {Owner, beamgate_ready} -> ok after 10000 -> erlang:error(beamgate_fixture_timeout) end.
`

// StartProduction starts a node with Start and installs the fixture state.
func StartProduction(t testing.TB, opts Options) *Production {
	t.Helper()
	n := Start(t, opts)
	if got := n.Eval(t, fmt.Sprintf(stateOwnerSource, InitialState)); got != "ok" {
		t.Fatalf("beamtest: install production fixture on %s: %s", n.Name, got)
	}
	return &Production{Node: n, MarkerPath: filepath.Join(t.TempDir(), "beamgate-marker")}
}

// OrdersRows returns the printed rows of OrdersTable, sorted.
func (p *Production) OrdersRows(t testing.TB) []string {
	t.Helper()
	text := p.EvalString(t,
		`lists:join($\n, [io_lib:print(R, 1, 1000000000, -1) || R <- lists:sort(ets:tab2list(beamgate_orders))])`)
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}

// StateValue returns the printed state of StateProcess.
func (p *Production) StateValue(t testing.TB) string {
	t.Helper()
	return p.Eval(t, `beamgate_state ! {get, self()}, receive {beamgate_state, S} -> S after 10000 -> beamgate_state_timeout end`)
}

// MarkerExists reports whether something created MarkerPath.
func (p *Production) MarkerExists() bool {
	_, err := os.Lstat(p.MarkerPath)
	return err == nil
}

// Snapshot prints the fixture state (orders, state value, marker) in one
// string, to compare before and after a session.
func (p *Production) Snapshot(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("orders: %s\nstate: %s\nmarker exists: %v\n",
		strings.Join(p.OrdersRows(t), " "), p.StateValue(t), p.MarkerExists())
}

// SpawnProcesses starts n idle processes on the node (load for process
// listing tests); they live until the node stops.
func (p *Production) SpawnProcesses(t testing.TB, n int) {
	t.Helper()
	expr := fmt.Sprintf(`[spawn(fun() -> receive beamtest_stop -> ok end end) || _ <- lists:seq(1, %d)], ok`, n)
	if got := p.Eval(t, expr); got != "ok" {
		t.Fatalf("beamtest: spawn %d processes on %s: %s", n, p.Name, got)
	}
}

// ProcessCount returns erlang:system_info(process_count) on the node.
func (p *Production) ProcessCount(t testing.TB) int {
	t.Helper()
	got := p.Eval(t, `erlang:system_info(process_count)`)
	c, err := strconv.Atoi(got)
	if err != nil {
		t.Fatalf("beamtest: process count on %s: %q", p.Name, got)
	}
	return c
}
