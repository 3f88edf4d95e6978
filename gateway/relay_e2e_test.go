package gateway

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// relayEnv is a gateway with the real relay in front of a real production
// node prismatic@prod-01 on 127.0.0.2, and alice's ssh -N -L running.
type relayEnv struct {
	*gatewayEnv
	prod        *beamtest.Production
	epmdLocal   int // engineer-side forwarded epmd port
	gatewayPort int
	inetrc      string
}

func startRelayEnv(t *testing.T) *relayEnv {
	t.Helper()
	beamtest.RequireErl(t)
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	prod := beamtest.StartProduction(t, beamtest.Options{
		Name: "prismatic@prod-01", Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd,
	})
	ep, gp := beamtest.FreePort(t), beamtest.FreePort(t)
	e := startGateway(t, envOptions{
		dial:        net.JoinHostPort("127.0.0.2", strconv.Itoa(prodEpmd)),
		gatewayPort: gp,
		realRelay:   true,
		extraYAML:   fmt.Sprintf("engineer_epmd_port: %d\n", ep),
	})
	e.forward("alice", e.aliceK, []string{
		fmt.Sprintf("%d:prod-01:4369", ep),
		fmt.Sprintf("%d:prod-01:%d", gp, gp),
	}, ep)
	return &relayEnv{
		gatewayEnv: e, prod: prod, epmdLocal: ep, gatewayPort: gp,
		inetrc: beamtest.WriteInetrc(t, map[string]string{"prod-01": "127.0.0.1"}),
	}
}

// engineer starts a hidden engineer node using the forwarded epmd.
func (r *relayEnv) engineer(t *testing.T, kind, cookie string) *beamtest.Node {
	t.Helper()
	return beamtest.Start(t, beamtest.Options{
		Name: "eng" + strconv.FormatInt(time.Now().UnixNano()%100000, 10) + "@localhost", Cookie: cookie,
		EpmdPort: r.epmdLocal, Inetrc: r.inetrc, Hidden: true, Kind: kind,
	})
}

// TestRelayThroughSSH: a real hidden erl and iex node, through ssh -N -L
// and beamgate, reach production with the gateway cookie; reads work,
// writes are refused at once, a wrong cookie is refused, and the
// production cookie appears nowhere on the engineer's side or in the
// audit log.
func TestRelayThroughSSH(t *testing.T) {
	r := startRelayEnv(t)
	before := r.prod.Snapshot(t)
	cookie := r.gw.Cookie("alice", time.Now())

	eng := r.engineer(t, beamtest.KindErl, cookie)
	if got := eng.Eval(t, `net_adm:ping('prismatic@prod-01')`); got != "pong" {
		t.Fatalf("ping through beamgate = %s\n%s", got, r.auditLog())
	}
	if got := eng.Eval(t, `rpc:call('prismatic@prod-01', erlang, node, [])`); got != "'prismatic@prod-01'" {
		t.Errorf("rpc node() = %s", got)
	}
	if got := eng.Eval(t, `is_list(rpc:call('prismatic@prod-01', erlang, processes, []))`); got != "true" {
		t.Errorf("rpc processes() = %s", got)
	}
	got := eng.Eval(t, `rpc:call('prismatic@prod-01', ets, insert, [beamgate_orders, {9, <<"evil">>, 1}], 5000)`)
	if !strings.Contains(got, "badrpc") {
		t.Errorf("write through beamgate = %s, want a badrpc refusal", got)
	}
	if after := r.prod.Snapshot(t); after != before {
		t.Errorf("production state changed:\nbefore %s\nafter  %s", before, after)
	}

	if _, err := exec.LookPath("elixir"); err == nil {
		iex := r.engineer(t, beamtest.KindElixir, cookie)
		if got := iex.EvalElixir(t, `Node.connect(:"prismatic@prod-01")`); got != "true" {
			t.Errorf("iex Node.connect = %s", got)
		}
	}

	bad := r.engineer(t, beamtest.KindErl, "WRONGCOOKIE")
	if got := bad.Eval(t, `net_adm:ping('prismatic@prod-01')`); got != "pang" {
		t.Errorf("wrong gateway cookie: ping = %s", got)
	}

	for _, out := range []string{eng.Output(), bad.Output(), r.auditLog()} {
		if strings.Contains(out, prodCookie) {
			t.Fatal("the production cookie leaked to the engineer side or the audit log")
		}
	}
	r.waitAudit(`"event":"forward"`, `"target":"prismatic@prod-01"`)
}

// TestElixirWrappersThroughSSH: an iex engineer reads an Elixir
// production node with Elixir's own read-only wrappers (Process.info/2,
// Application.started_applications/0, Supervisor.which_children/1), which
// the readonly profile maps to their Erlang counterparts' rules, while
// Application.get_env and Process.info(pid, :messages) stay refused.
func TestElixirWrappersThroughSSH(t *testing.T) {
	beamtest.RequireElixir(t)
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	beamtest.StartProduction(t, beamtest.Options{
		Name: "prismatic@prod-01", Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd, Kind: beamtest.KindElixir,
	})
	ep, gp := beamtest.FreePort(t), beamtest.FreePort(t)
	e := startGateway(t, envOptions{
		dial: net.JoinHostPort("127.0.0.2", strconv.Itoa(prodEpmd)), gatewayPort: gp, realRelay: true,
		extraYAML: fmt.Sprintf("engineer_epmd_port: %d\n", ep),
	})
	e.forward("alice", e.aliceK, []string{fmt.Sprintf("%d:prod-01:4369", ep), fmt.Sprintf("%d:prod-01:%d", gp, gp)}, ep)
	r := &relayEnv{gatewayEnv: e, epmdLocal: ep, gatewayPort: gp, inetrc: beamtest.WriteInetrc(t, map[string]string{"prod-01": "127.0.0.1"})}
	iex := r.engineer(t, beamtest.KindElixir, e.gw.Cookie("alice", time.Now()))
	for _, c := range []struct{ code, want string }{
		{`n = :"prismatic@prod-01"; pid = :rpc.call(n, Process, :whereis, [:code_server]); :rpc.call(n, Process, :info, [pid, :registered_name])`, "{:registered_name, :code_server}"},
		{`:rpc.call(:"prismatic@prod-01", Application, :started_applications, []) |> Enum.any?(&(elem(&1, 0) == :elixir))`, "true"},
		{`is_list(:rpc.call(:"prismatic@prod-01", Supervisor, :which_children, [:kernel_sup]))`, "true"},
		{`:rpc.call(:"prismatic@prod-01", Application, :get_env, [:kernel, :start_pg]) |> elem(0)`, ":badrpc"},
		{`n = :"prismatic@prod-01"; pid = :rpc.call(n, Process, :whereis, [:code_server]); :rpc.call(n, Process, :info, [pid, [:messages]]) |> elem(0)`, ":badrpc"},
	} {
		if got := iex.EvalElixir(t, c.code); got != c.want {
			t.Errorf("%s = %s, want %s\naudit:\n%s", c.code, got, c.want, e.auditLog())
		}
	}
	e.waitAudit(`"mfa":"Elixir.Process:info/2"`, `"rule":"process.info"`, `"mfa":"Elixir.Application:started_applications/0"`, `"rule":"secrets"`)
}

// TestRefusedTraceFailsFast: dbg:n/1 (what observer's Start Trace and ttb
// do underneath) spawns dbg:do_relay on production; beamgate refuses it so
// that dbg returns an error at once and stays usable, where the engineer's
// dbg server used to hang for good.
func TestRefusedTraceFailsFast(t *testing.T) {
	r := startRelayEnv(t)
	eng := r.engineer(t, beamtest.KindErl, r.gw.Cookie("alice", time.Now()))
	got := eng.Eval(t, `pong = net_adm:ping('prismatic@prod-01'), {ok, _} = dbg:tracer(),
		T0 = erlang:monotonic_time(millisecond), R = dbg:n('prismatic@prod-01'),
		{element(1, R), erlang:monotonic_time(millisecond) - T0 < 5000, dbg:get_tracer(), dbg:stop()}`)
	if !strings.HasPrefix(got, "{error,true,{ok,") || !strings.HasSuffix(got, ",ok}") {
		t.Errorf("dbg:n through beamgate = %s, want an error at once and a working dbg", got)
	}
	r.waitAudit(`"mfa":"dbg:do_relay/2"`)
}
