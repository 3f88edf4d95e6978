package gateway

// The OTP interop matrix (issue 7) through the front door: every cell runs
// a real production node of one OTP release, this package's SSH server with
// the real relay in front of it, the real OpenSSH client's `ssh -N -L`, and
// a real engineer node of another release following the banner's recipe
// (its ssh -N, ERL_EPMD_PORT and ERL_INETRC, a visible node with
// -connect_all false, the gateway cookie). gateway/relay's TestMatrix runs the same
// cells against the relay alone, without SSH.
//
// OTP 27 and 29 run in chroots from internal/otp; like TestMatrix this
// runs only with BEAMGATE_MATRIX=1 (make matrix).

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/internal/beamtest"
	"beamgate/internal/otp"
)

// matrixProdAtom is the production node every cell reaches, as in the
// front-door tests: a short name on 127.0.0.2 behind the gateway.
const matrixProdAtom = "'prismatic@prod-01'"

// matrixEvil is the row every refused write would have inserted.
const matrixEvil = `[beamgate_orders, {99, <<"evil">>, 0}]`

// TestMatrixSSH runs, for every engineer release against every production
// release and for iex engineers of each Elixir against production OTP 27,
// the read-only checks and refusals of the front-door tests through
// `ssh -N -L` and beamgate.
func TestMatrixSSH(t *testing.T) {
	if !otp.Enabled() {
		t.Skipf("the OTP interop matrix runs with %s=1 (make matrix)", otp.EnableEnv)
	}
	beamtest.RequireOpenSSH(t)
	beamtest.RequireErl(t)
	m := beamtest.NewMatrix(otp.Releases, otp.Versions)
	for _, eng := range otp.Releases {
		for _, prod := range otp.Releases {
			m.RunErl(t, eng, prod, func(t *testing.T) {
				prodErl, engErl := otp.Erl(t, prod), otp.Erl(t, eng)
				c := startSSHCell(t, prodErl, beamtest.Options{Erl: engErl})
				c.checkEngineerRelease(t, eng)
				c.check(t, prod)
				if prod == otp.Releases[0] {
					// erl -remsh of this release fails fast, naming the rule.
					screen := remoteShell(t, c.home, c.env, engErl+" -sname rsh -connect_all false -setcookie "+c.gw.Cookie("alice", time.Now())+" -remsh prismatic@prod-01")
					t.Logf("erl -remsh on OTP %s:\n%s", eng, strings.TrimSpace(screen))
				}
			})
		}
	}
	for _, eng := range otp.Releases {
		const prod = "27"
		m.RunIex(t, eng, prod, func(t *testing.T) {
			prodErl, elixir := otp.Erl(t, prod), otp.Elixir(t, eng)
			c := startSSHCell(t, prodErl, beamtest.Options{Kind: beamtest.KindElixir, Elixir: elixir})
			c.checkEngineerRelease(t, eng)
			screen := remoteShell(t, c.home, c.env, otp.Iex(t, eng)+" --sname rsh --erl \"-connect_all false\" --cookie "+c.gw.Cookie("alice", time.Now())+" --remsh prismatic@prod-01")
			t.Logf("iex --remsh on Elixir of OTP %s:\n%s", eng, strings.TrimSpace(screen))
			got := c.eng.EvalElixir(t, `p = :"prismatic@prod-01"; {Node.ping(p), :rpc.call(p, :erlang, :system_info, [:otp_release]) |> List.to_string()}`)
			if want := `{:pong, "` + prod + `"}`; got != want {
				t.Errorf("Elixir ping and rpc = %s, want %s", got, want)
			}
			c.check(t, prod)
		})
	}
	// gateway/relay's TestMatrix wrote the first table of `make matrix`.
	m.Report(t, "OTP interop matrix through `ssh -N -L` and beamgate's SSH front door", true)
}

// sshCell is one matrix cell: production, the gateway, alice's ssh -N -L
// and her engineer node.
type sshCell struct {
	*gatewayEnv
	prod *beamtest.Production
	eng  *beamtest.Node
	home string   // the engineer's $HOME
	env  []string // the recipe's environment
}

// startSSHCell starts production prismatic@prod-01 with prodErl (on
// 127.0.0.2, with its own epmd), the gateway with the real relay in front
// of it, alice's ssh -N -L of the epmd and gateway ports, and an engineer
// node from eng (its erl or elixir launcher and kind) that reaches
// production through the forwarded ports with the gateway cookie.
func startSSHCell(t *testing.T, prodErl string, eng beamtest.Options) *sshCell {
	t.Helper()
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	prod := beamtest.StartProduction(t, beamtest.Options{
		Name: "prismatic@prod-01", Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: prodEpmd, Erl: prodErl,
	})
	// prismatic is the second cluster by name: its recipe uses
	// engineer_epmd_port + 1 and host address 127.77.2.1.
	free := []string{"127.0.0.1", "127.77.2.1"}
	epmdLocal, gwPort := beamtest.FreePortOn(t, free...), beamtest.FreePortOn(t, free...)
	e := startGateway(t, envOptions{
		dial:        "127.0.0.2:" + strconv.Itoa(prodEpmd),
		gatewayPort: gwPort,
		realRelay:   true,
		extraYAML:   fmt.Sprintf("engineer_epmd_port: %d\n", epmdLocal-1),
	})
	// Follow the recipe as printed: its forwards and environment, and a
	// visible engineer node with -connect_all false.
	r := e.ssh("alice", e.aliceK, nil, "recipe", "prismatic")
	if r.code != 0 {
		t.Fatalf("recipe: exit %d %s", r.code, r.stderr)
	}
	port, _ := strconv.Atoi(e.port)
	beamtest.StartRecipeForward(t, beamtest.RecipeLine(t, r.stdout, "ssh -N"), port, e.aliceK)
	home := t.TempDir()
	env := beamtest.RecipeEnv(t, r.stdout, home)
	eng.Name = "alice_erl@localhost"
	eng.ExtraArgs = []string{"-connect_all", "false"}
	if eng.Kind == beamtest.KindElixir {
		eng.Name = "alice_iex@localhost"
		eng.ExtraArgs = []string{"--erl", "-connect_all false"}
	}
	eng.Cookie = e.gw.Cookie("alice", time.Now())
	eng.EpmdPort = epmdLocal
	eng.Env = env
	return &sshCell{gatewayEnv: e, prod: prod, eng: beamtest.Start(t, eng), home: home, env: env}
}

// checkEngineerRelease makes sure the engineer runs the release its row
// names (a chroot wrapper that fell back to the host's erl would not).
func (c *sshCell) checkEngineerRelease(t *testing.T, rel string) {
	t.Helper()
	if got := c.eng.Eval(t, "erlang:system_info(otp_release)"); got != strconv.Quote(rel) {
		t.Fatalf("engineer runs OTP %s, want %q", got, rel)
	}
}

// check runs the cell's read-only checks and refusals and checks that
// production is unchanged afterwards.
func (c *sshCell) check(t *testing.T, prodRelease string) {
	t.Helper()
	before := c.prod.Snapshot(t)
	if got := c.evalP(t, "net_adm:ping(P)"); got != "pong" {
		t.Fatalf("ping through ssh -L and beamgate = %s\naudit log:\n%s", got, c.auditLog())
	}
	// Visible on the engineer's side (observer's Nodes menu), hidden on
	// production's.
	if got := c.evalP(t, "nodes()"); got != "["+matrixProdAtom+"]" {
		t.Errorf("engineer's nodes() = %s, want production", got)
	}
	if got := c.prod.Eval(t, "{nodes(), length(nodes(hidden))}"); got != "{[],1}" {
		t.Errorf("production's {nodes(), length(nodes(hidden))} = %s, want {[],1}", got)
	}
	// What production itself answers, to compare the engineer's view with.
	sysInfoKeys := c.prod.Eval(t, "lists:sort(proplists:get_keys(observer_backend:sys_info()))")
	orders := c.prod.Eval(t, "lists:sort(ets:tab2list(beamgate_orders))")
	for _, k := range []struct{ name, expr, want string }{
		{"rpc node", "rpc:call(P, erlang, node, [])", matrixProdAtom},
		{"erpc otp_release", "erpc:call(P, erlang, system_info, [otp_release])", strconv.Quote(prodRelease)},
		{"sys_info keys", "lists:sort(proplists:get_keys(rpc:call(P, observer_backend, sys_info, [])))", sysInfoKeys},
		// etop's collector, spawned on production, answers the engineer's
		// process with {Pid, #etop_info{}}.
		{"etop_collect", `process_flag(trap_exit, true),
			C = spawn_link(P, observer_backend, etop_collect, [self()]),
			receive {C, Info} -> element(1, Info) after 10000 -> timeout end`, "etop_info"},
		// Table Viewer: get_table streams {Pid, Rows} until
		// {Pid, '$end_of_table'}; rows are flattened because releases
		// batch them differently.
		{"get_table", `Pid = rpc:call(P, observer_backend, get_table, [self(), beamgate_orders, ets]),
			Collect = fun Collect(Acc) -> receive {Pid, '$end_of_table'} -> Acc; {Pid, Rows} -> Collect(Acc ++ Rows) after 10000 -> timeout end end,
			case Collect([]) of timeout -> timeout; Rows -> lists:sort(lists:flatten(Rows)) end`, orders},
	} {
		if got := c.evalP(t, k.expr); got != k.want {
			t.Errorf("%s = %s, want %s", k.name, got, k.want)
		}
	}
	// Refusals: the relay's own answer, well within the calls' 5 s
	// timeouts (a hung request would give {badrpc,timeout} or a timeout
	// error, not beamgate_denied).
	for _, r := range []struct{ name, expr, want string }{
		{"rpc ets:insert", "rpc:call(P, ets, insert, " + matrixEvil + ", 5000)",
			"{badrpc,{'EXIT',{beamgate_denied,{ets,insert,2},"},
		{"erpc ets:insert", "try erpc:call(P, ets, insert, " + matrixEvil + ", 5000) catch Class:Reason -> {Class, Reason} end",
			"{exit,{exception,{beamgate_denied,{ets,insert,2},"},
	} {
		got := c.evalP(t, "T0 = erlang:monotonic_time(microsecond), R = begin "+r.expr+" end, {erlang:monotonic_time(microsecond) - T0, R}")
		var us int
		if _, err := fmt.Sscanf(got, "{%d,", &us); err != nil {
			t.Errorf("%s: reply %s", r.name, got)
			continue
		}
		if rest := got[strings.Index(got, ",")+1:]; !strings.HasPrefix(rest, r.want) {
			t.Errorf("%s = %s, want prefix %s", r.name, rest, r.want)
			continue
		}
		t.Logf("%s refused in %d µs", r.name, us)
	}
	if got := c.evalP(t, "net_adm:ping(P)"); got != "pong" {
		t.Errorf("session did not survive the refusals: %s", got)
	}
	if after := c.prod.Snapshot(t); after != before {
		t.Errorf("production changed:\nbefore %s\nafter  %s", before, after)
	}
	c.waitDenied(t, "ets.write", 2)
	if strings.Contains(c.auditLog(), "cluster.membership") {
		t.Errorf("an engineer started with -connect_all false sent cluster sync messages")
	}
	for where, text := range map[string]string{"engineer output": c.eng.Output(), "audit log": c.auditLog()} {
		if strings.Contains(text, prodCookie) {
			t.Errorf("the production cookie appears in the %s", where)
		}
	}
}

// evalP evaluates expr on the engineer with P bound to production.
func (c *sshCell) evalP(t *testing.T, expr string) string {
	t.Helper()
	return c.eng.Eval(t, "P = "+matrixProdAtom+", "+expr)
}

// waitDenied waits (bounded) until the audit log holds want denied
// messages of rule from the engineer to production.
func (c *sshCell) waitDenied(t *testing.T, rule string, want int) {
	t.Helper()
	var got []audit.Record
	for range 100 {
		got = got[:0]
		if f, err := os.Open(c.auditP); err == nil {
			err = audit.Query(f, audit.Filter{Decision: audit.DecisionDeny, Event: "message"}, func(r audit.Record) error {
				if r.Rule == rule && r.Target == "prismatic@prod-01" && r.User == "alice" {
					got = append(got, r)
				}
				return nil
			})
			f.Close()
			if err != nil {
				t.Fatalf("audit query: %v", err)
			}
		}
		if len(got) >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("audit log has %d refusals of rule %s, want %d:\n%s", len(got), rule, want, c.auditLog())
}
