package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// clusterEnv is a gateway with the real relay in front of a cluster
// "atlas" of real production nodes on two loopback hosts: prod-a
// (127.0.0.2) and prod-b (127.0.0.3), each with its own epmd, and two of
// the nodes sharing the short name app.
type clusterEnv struct {
	*gatewayEnv
	nodes map[string]*beamtest.Production // by name
	names []string                        // sorted
	home  string                          // the engineer's $HOME
}

// clusterNode is one node of a test cluster and its host's address.
type clusterNode struct{ name, ip string }

// atlasNodes are the cluster's nodes: name and loopback host address.
var atlasNodes = []clusterNode{
	{"app@prod-a", "127.0.0.2"},
	{"worker@prod-a", "127.0.0.2"},
	{"app@prod-b", "127.0.0.3"},
	{"cache@prod-b", "127.0.0.3"},
}

// The layout beamgate gives cluster atlas (the first cluster by name):
// 127.77.1.H for its hosts.
var atlasAddrs = []string{"127.77.1.1", "127.77.1.2"}

func startClusterEnv(t *testing.T) *clusterEnv {
	t.Helper()
	return startClusterOf(t, atlasNodes, atlasAddrs)
}

// startClusterOf starts cluster atlas of nodes, whose hosts the recipe
// lays out on addrs (127.77.1.1, ... in order of first appearance). Nodes
// on one host get distinct gateway ports; the same ports repeat across
// hosts, as they may.
func startClusterOf(t *testing.T, nodes []clusterNode, addrs []string) *clusterEnv {
	t.Helper()
	beamtest.RequireErl(t)
	epmds := map[string]int{}
	perHost := map[string]int{} // nodes so far on each host
	for _, n := range nodes {
		if _, ok := epmds[n.ip]; !ok {
			epmds[n.ip] = beamtest.StartEpmdOn(t, n.ip)
		}
	}
	free := append([]string{"127.0.0.1"}, addrs...)
	ep := beamtest.FreePortOn(t, free...)
	var ports []int
	gp := map[string]int{}
	for _, n := range nodes {
		i := perHost[n.ip]
		perHost[n.ip]++
		for len(ports) <= i {
			if p := beamtest.FreePortOn(t, free...); p != ep && !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
		gp[n.name] = ports[i]
	}

	var yaml strings.Builder
	yaml.WriteString("  atlas:\n    nodes:\n")
	for _, n := range nodes {
		fmt.Fprintf(&yaml, "      - name: %s\n        dial: %s:%d\n        gateway_port: %d\n", n.name, n.ip, epmds[n.ip], gp[n.name])
	}
	e := startGateway(t, envOptions{
		realRelay:    true,
		clustersYAML: yaml.String(),
		rolesYAML:    "  atlas:\n    clusters: [atlas]\n    policy: readonly\n    mode: enforce\n",
		aliceRoles:   "[observer, atlas]",
		extraYAML:    fmt.Sprintf("engineer_epmd_port: %d\n", ep),
	})
	c := &clusterEnv{gatewayEnv: e, nodes: map[string]*beamtest.Production{}, home: t.TempDir()}
	started := make([]*beamtest.Production, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started[i] = beamtest.StartProduction(t, beamtest.Options{
				Name: n.name, Cookie: prodCookie, BindIP: n.ip, EpmdPort: epmds[n.ip],
			})
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, n := range nodes {
		c.nodes[n.name] = started[i]
		c.names = append(c.names, n.name)
	}
	slices.Sort(c.names)
	return c
}

// recipe returns the recipe alice is printed for cluster.
func (c *clusterEnv) recipe(cluster string) string {
	c.t.Helper()
	r := c.ssh("alice", c.aliceK, nil, "recipe", cluster)
	if r.code != 0 {
		c.t.Fatalf("ssh alice recipe %s: exit %d\n%s%s", cluster, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// line returns the recipe line starting with prefix.
func (c *clusterEnv) line(recipe, prefix string) string {
	c.t.Helper()
	return beamtest.RecipeLine(c.t, recipe, prefix)
}

// startRecipeForward runs the recipe's ssh -N line as printed.
func (c *clusterEnv) startRecipeForward(line string) time.Time {
	c.t.Helper()
	port, _ := strconv.Atoi(c.port)
	return beamtest.StartRecipeForward(c.t, line, port, c.aliceK)
}

// shellEnv runs the recipe's printf and export lines.
func (c *clusterEnv) shellEnv(recipe string) []string {
	c.t.Helper()
	return beamtest.RecipeEnv(c.t, recipe, c.home)
}

// clusterChecks is what the erl engineer evaluates after the recipe's
// own -eval connected it: one CHECK line per fact.
const clusterChecks = `Prod = lists:sort(['app@prod-a','worker@prod-a','app@prod-b','cache@prod-b']),
io:format("CHECK nodes ~p~n", [lists:sort(nodes())]),
[_, Host] = string:lexemes(atom_to_list(node()), "@"),
Names = case net_adm:names() of {ok, Ns} -> Ns; _ -> [] end,
Menu = lists:usort([list_to_atom(N ++ "@" ++ Host) || {N, _} <- Names] ++ nodes()),
io:format("CHECK phantoms ~p~n", [[N || N <- Menu, N =/= node(), not lists:member(N, Prod)]]),
io:format("CHECK home ~p~n", [[N || {N, _} <- element(2, erl_epmd:names({127,0,0,1}))]]),
io:format("CHECK select ~p~n", [[rpc:call(N, erlang, node, []) || N <- Menu, N =/= node()]]),
{Res, Bad} = rpc:multicall(Prod, erlang, node, []),
io:format("CHECK multicall ~p ~p~n", [lists:sort(Res), Bad]),
io:format("CHECK erpc ~w~n", [lists:sort(erpc:multicall(Prod, erlang, node, []))]),
process_flag(trap_exit, true),
io:format("CHECK etop ~w~n", [[begin C = spawn_link(N, observer_backend, etop_collect, [self()]),
    receive {C, Info} -> element(1, Info) after 10000 -> timeout end end || N <- Prod]]),
T0 = erlang:monotonic_time(millisecond),
W = [rpc:call(N, ets, insert, [beamgate_orders, {9, evil, 1}], 5000) || N <- Prod],
io:format("CHECK writes ~p ~p~n", [length([x || {badrpc, {'EXIT', {beamgate_denied, _, _}}} <- W]), erlang:monotonic_time(millisecond) - T0]),
halt().`

// TestClusterRecipeErl follows the printed recipe literally, with a real
// ssh -N and a real erl: one engineer node reaches all four nodes of a
// two-host cluster (two nodes share the short name app), observer's
// Nodes menu sources (net_adm:names() and nodes()) name no phantom,
// rpc:multicall and erpc:multicall answer once per node, and a write on
// every node is refused at once.
func TestClusterRecipeErl(t *testing.T) {
	c := startClusterEnv(t)
	recipe := c.recipe("atlas")
	for _, w := range []string{"== Cluster atlas: 4 nodes on 2 hosts ==", "127.77.1.1", "127.77.1.2", "sudo ifconfig lo0 alias"} {
		if !strings.Contains(recipe, w) {
			t.Fatalf("recipe lacks %q:\n%s", w, recipe)
		}
	}
	started := c.startRecipeForward(c.line(recipe, "ssh -N"))
	env := c.shellEnv(recipe)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	text, err := beamtest.RunRecipeErl(t, ctx, c.line(recipe, "erl "), env, c.home, clusterChecks)
	t.Logf("recipe ssh -N to erl done: %v", time.Since(started).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("engineer erl: %v\n%s\naudit:\n%s", err, text, c.auditLog())
	}
	want := "beamgate: connected ['app@prod-a','worker@prod-a','app@prod-b','cache@prod-b'], not connected []"
	if !strings.Contains(text, want) {
		t.Fatalf("the recipe's -eval did not connect every node:\n%s\naudit:\n%s", text, c.auditLog())
	}
	got := beamtest.CheckLines(text)
	list := "['app@prod-a','app@prod-b','cache@prod-b','worker@prod-a']"
	for k, v := range map[string]string{
		"nodes":     list,
		"phantoms":  "[]",
		"home":      `["alice_erl"]`,
		"select":    "['app@prod-a','app@prod-b','cache@prod-b','worker@prod-a']",
		"multicall": list + " []",
		"erpc":      "[{ok,'app@prod-a'},{ok,'app@prod-b'},{ok,'cache@prod-b'},{ok,'worker@prod-a'}]",
		"etop":      "[etop_info,etop_info,etop_info,etop_info]",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q\n%s", k, got[k], v, text)
		}
	}
	if w := strings.Fields(got["writes"]); len(w) != 2 || w[0] != "4" {
		t.Errorf("writes refused = %q, want 4 of 4\n%s", got["writes"], text)
	} else {
		t.Logf("4 refused writes took %s ms in all", w[1])
	}
	for name, p := range c.nodes {
		if rows := p.OrdersRows(t); !slices.Equal(rows, beamtest.InitialOrders) {
			t.Errorf("%s: orders changed: %v", name, rows)
		}
	}
	log := c.auditLog()
	if strings.Contains(log, "cluster.membership") {
		t.Errorf("a node started as the recipe says sent cluster sync messages:\n%s", log)
	}
	for _, n := range c.names {
		if !strings.Contains(log, `"target":"`+n+`"`) {
			t.Errorf("audit log names no session with %s", n)
		}
	}
	if strings.Contains(text+log, prodCookie) {
		t.Fatal("production cookie leaked")
	}
}

// TestClusterRecipeIex: the recipe's iex line, run as printed in a
// terminal (tmux), connects to all four nodes; Node.list() and
// :rpc.multicall see each once.
func TestClusterRecipeIex(t *testing.T) {
	beamtest.RequireElixir(t)
	c := startClusterEnv(t)
	recipe := c.recipe("atlas")
	c.startRecipeForward(c.line(recipe, "ssh -N"))
	script := filepath.Join(c.home, "engineer.sh")
	body := "export HOME=" + c.home + "\ncd \"$HOME\"\n" + c.line(recipe, "printf") + "\n" + c.line(recipe, "export ") + "\n" + c.line(recipe, "iex ") + "\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	m := beamtest.StartTmux(t, 220, 50, "sh "+script+"; sleep 30")
	want := `beamgate: connected [:"app@prod-a", :"worker@prod-a", :"app@prod-b", :"cache@prod-b"], not connected []`
	if screen := m.WaitContains(60*time.Second, "not connected"); !strings.Contains(strings.ReplaceAll(screen, "\n", ""), want) {
		t.Fatalf("iex did not connect every node:\n%s\naudit:\n%s", screen, c.auditLog())
	}
	m.WaitContains(30*time.Second, "iex(alice_iex@")
	m.SendKeys(`IO.puts("CHECK " <> inspect({Enum.sort(Node.list()), :rpc.multicall(Node.list(), :erlang, :node, []) |> elem(0) |> length()}))`, "Enter")
	screen := m.WaitContains(30*time.Second, "CHECK {")
	if !strings.Contains(screen, `CHECK {[:"app@prod-a", :"app@prod-b", :"cache@prod-b", :"worker@prod-a"], 4}`) {
		t.Errorf("iex checks:\n%s", screen)
	}
}

// TestClusterHomeFace: the home forward serves only the engineer's own
// nodes: a second registration of the same name on one connection is
// refused (erl reports the name in use), another name is listed too, and
// the home face never answers for a production name.
func TestClusterHomeFace(t *testing.T) {
	c := startClusterEnv(t)
	recipe := c.recipe("atlas")
	c.startRecipeForward(c.line(recipe, "ssh -N"))
	env := c.shellEnv(recipe)
	var epmdPort string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "ERL_EPMD_PORT="); ok {
			epmdPort = v
		}
	}
	beamtest.Start(t, beamtest.Options{Name: "alice_erl@localhost", Cookie: "x", EpmdPort: mustAtoi(t, epmdPort), Env: env})
	if got := erlEval(t, env, `[N || {N, _} <- element(2, erl_epmd:names({127,0,0,1}))]`); got != `["alice_erl"]` {
		t.Errorf("home names = %s", got)
	}
	if got := erlEval(t, env, `erl_epmd:port_please("app", {127,0,0,1})`); got != "noport" {
		t.Errorf("home face answers a production name: %s", got)
	}
	if got := erlEval(t, env, `erl_epmd:port_please("app", {127,77,1,2})`); !strings.HasPrefix(got, "{port,") {
		t.Errorf("prod-b's face: port_please(app) = %s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dup := exec.CommandContext(ctx, "erl", "-sname", "alice_erl", "-setcookie", "x", "-noshell", "-eval", "halt().")
	dup.Env = env
	dup.Dir = t.TempDir()
	out, _ := dup.CombinedOutput()
	if !strings.Contains(string(out), "in use") {
		t.Errorf("second alice_erl on one connection: %s", out)
	}
	c.waitAudit(`"service":"home"`, `"op":"ALIVE2_REQ"`)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// plantCulprit registers culprit_hog on one node, holding far more heap
// than any other process of the test nodes.
const plantCulprit = `
Parent = self(),
Hog = spawn(fun() -> register(culprit_hog, self()), L = lists:seq(1, 1000000),
    Parent ! {self(), ready}, receive stop -> length(L) end end),
receive {Hog, ready} -> ok end,
ok.
`

// TestClusterTop: a cluster-wide top over four real nodes names a
// culprit planted on one of them with its NODE, --json carries the node
// on every row, and a killed node is reported down while the others are
// still shown.
func TestClusterTop(t *testing.T) {
	c := startClusterEnv(t)
	if got := c.nodes["worker@prod-a"].Eval(t, plantCulprit); got != "ok" {
		t.Fatalf("plant: %s", got)
	}
	start := time.Now()
	r := c.ssh("alice", c.aliceK, nil, "top", "atlas", "--by", "memory", "-n", "5")
	t.Logf("cluster top over 4 nodes: %v\n%s", time.Since(start).Round(time.Millisecond), r.stdout)
	if r.code != 0 {
		t.Fatalf("top atlas: exit %d\n%s%s\naudit:\n%s", r.code, r.stdout, r.stderr, c.auditLog())
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 3 || !strings.Contains(lines[0], "across 4 of 4 nodes of atlas") || !strings.HasPrefix(lines[1], "NODE") {
		t.Fatalf("top atlas:\n%s", r.stdout)
	}
	if f := strings.Fields(lines[2]); len(f) < 3 || f[0] != "worker@prod-a" || f[2] != "culprit_hog" {
		t.Errorf("first row is not worker@prod-a's culprit_hog:\n%s", r.stdout)
	}

	r = c.ssh("alice", c.aliceK, nil, "top", "atlas", "-n", "20", "--json")
	var res struct {
		Nodes []struct {
			Node string `json:"node"`
			OK   bool   `json:"ok"`
		} `json:"nodes"`
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Nodes) != 4 || len(res.Rows) != 20 {
		t.Fatalf("top atlas --json (%v):\n%s", err, r.stdout)
	}
	seen := map[string]bool{}
	for _, row := range res.Rows {
		n, _ := row["node"].(string)
		if !slices.Contains(c.names, n) {
			t.Errorf("row without a cluster node: %v", row)
		}
		seen[n] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 rows from %d node(s) only", len(seen))
	}

	c.nodes["cache@prod-b"].Kill()
	r = c.ssh("alice", c.aliceK, nil, "top", "atlas", "--by", "memory", "-n", "5")
	if r.code != 2 || !strings.Contains(r.stdout, "across 3 of 4 nodes") || !strings.Contains(r.stdout, "down: cache@prod-b: ") ||
		!strings.Contains(r.stdout, "culprit_hog") {
		t.Errorf("top with a node killed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = c.ssh("alice", c.aliceK, nil, "apps", "atlas")
	if r.code != 1 || !strings.Contains(r.stderr, "apps takes one NODE, not a cluster") {
		t.Errorf("apps atlas: exit %d\n%s", r.code, r.stderr)
	}
	log := c.waitAudit(`"op":"top atlas --by memory -n 5"`, `"event":"view"`)
	for _, n := range c.names {
		if !strings.Contains(log, `"target":"`+n+`"`) {
			t.Errorf("no audit record for a view call on %s", n)
		}
	}
	noCookie(t, log, r.stdout, r.stderr)
}
