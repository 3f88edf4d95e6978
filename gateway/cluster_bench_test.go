package gateway

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// TestClusterTimings measures (BEAMGATE_BENCH=1; make bench-cluster) the
// whole-cluster recipe and views on real nodes: the time from the
// recipe's ssh -N starting to the engineer's erl node being connected to
// every node, for 4 and 16 nodes, and a cluster-wide top over 4 nodes
// against top on one of them. It logs the figures; it asserts no
// timings.
func TestClusterTimings(t *testing.T) {
	if os.Getenv("BEAMGATE_BENCH") != "1" {
		t.Skip("timings run with BEAMGATE_BENCH=1 (make bench-cluster)")
	}
	var connect, top strings.Builder
	for _, n := range []int{4, 16} {
		nodes, addrs := benchCluster(n)
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			c := startClusterOf(t, nodes, addrs)
			recipe := c.recipe("atlas")
			started := c.startRecipeForward(c.line(recipe, "ssh -N"))
			tunnel := time.Since(started)
			env := c.shellEnv(recipe)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// After the recipe's own connect-all: the wall clock, the VM's
			// uptime, then five more connect-all rounds timed alone.
			check := `io:format("CHECK at ~b ~b~n", [erlang:system_time(millisecond), element(1, erlang:statistics(wall_clock))]),
Ns = nodes(), ` + connectRounds
			out, err := beamtest.RunRecipeErl(t, ctx, c.line(recipe, "erl "), env, c.home, check)
			if err != nil || !strings.Contains(out, "not connected []") {
				t.Fatalf("engineer: %v\n%s", err, out)
			}
			var at, uptime int64
			fmt.Sscanf(beamtest.CheckLines(out)["at"], "%d %d", &at, &uptime)
			total := time.UnixMilli(at).Sub(started)
			rounds, direct := sortedRounds(out), directRounds(t, c, nodes)
			if len(rounds) != 5 || len(direct) != 5 {
				t.Fatalf("rounds %v direct %v\n%s", rounds, direct, out)
			}
			ms := func(us int) string { return fmt.Sprintf("%.1f ms", float64(us)/1000) }
			line := fmt.Sprintf("| %d nodes on %d hosts | %v | %v | %v | %s (%s–%s) | %s (%s–%s) | %.1f |\n", n, len(addrs),
				tunnel.Round(time.Millisecond), total.Round(time.Millisecond), time.Duration(uptime)*time.Millisecond,
				ms(rounds[2]), ms(rounds[0]), ms(rounds[4]), ms(direct[2]), ms(direct[0]), ms(direct[4]), float64(rounds[2])/float64(direct[2]))
			connect.WriteString(line)
			t.Log(line)

			if n != 4 {
				return
			}
			timeTop := func(target string) []time.Duration {
				var ds []time.Duration
				for range 7 {
					s := time.Now()
					r := c.ssh("alice", c.aliceK, nil, "top", target, "--by", "memory", "-n", "10")
					ds = append(ds, time.Since(s))
					if r.code != 0 {
						t.Fatalf("top %s: exit %d %s", target, r.code, r.stderr)
					}
				}
				slices.Sort(ds)
				return ds
			}
			one, all := timeTop(c.names[0]), timeTop("atlas")
			line = fmt.Sprintf("| one node (%s) | %v (%v–%v) | 1 |\n| cluster atlas, 4 nodes on 2 hosts | %v (%v–%v) | %.2f |\n",
				c.names[0], one[3].Round(time.Millisecond), one[0].Round(time.Millisecond), one[6].Round(time.Millisecond),
				all[3].Round(time.Millisecond), all[0].Round(time.Millisecond), all[6].Round(time.Millisecond), float64(all[3])/float64(one[3]))
			top.WriteString(line)
			t.Log(line)
		})
	}
	t.Logf("\n| cluster | ssh -N to forwards listening | ssh -N to every node connected | engineer VM uptime then | connect-all through beamgate, median of 5 (min–max) | connect-all direct, slowest host | ratio |\n"+
		"|---|---|---|---|---|---|---|\n%s\n`ssh alice@bastion top TARGET --by memory -n 10`, 7 runs each, median (min–max), SSH login included:\n\n"+
		"| target | time | ratio |\n|---|---|---|\n%s", connect.String(), top.String())
}

// benchCluster is n nodes on max(2, n/4) hosts (127.0.0.2, ...), named
// app, w1, w2, ... on each host, so every host has an app.
func benchCluster(n int) ([]clusterNode, []string) {
	hosts := max(2, n/4)
	var nodes []clusterNode
	var addrs []string
	for h := range hosts {
		host := fmt.Sprintf("prod-%c", 'a'+h)
		ip := fmt.Sprintf("127.0.0.%d", h+2)
		addrs = append(addrs, fmt.Sprintf("127.77.1.%d", h+1))
		for i := range n / hosts {
			alive := "app"
			if i > 0 {
				alive = fmt.Sprintf("w%d", i)
			}
			nodes = append(nodes, clusterNode{alive + "@" + host, ip})
		}
	}
	return nodes, addrs
}

// connectRounds is an -eval that times five rounds of connecting to Ns in
// parallel (each after disconnecting them all) and prints them in µs as
// "CHECK rounds [..]", then halts.
const connectRounds = `P = self(),
Round = fun() -> [erlang:disconnect_node(N) || N <- Ns], timer:sleep(200), T0 = erlang:monotonic_time(microsecond),
    [spawn(fun() -> erlang:send(P, {N, net_kernel:connect_node(N)}) end) || N <- Ns],
    true = lists:all(fun(N) -> receive {N, R} -> R end end, Ns), erlang:monotonic_time(microsecond) - T0 end,
io:format("CHECK rounds ~w~n", [[Round() || _ <- lists:seq(1, 5)]]),
halt().`

// medianRound parses "CHECK rounds [a,b,...]" (µs) into the sorted list.
func sortedRounds(out string) []int {
	var rounds []int
	for _, f := range strings.Split(strings.Trim(beamtest.CheckLines(out)["rounds"], "[]"), ",") {
		if us, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			rounds = append(rounds, us)
		}
	}
	slices.Sort(rounds)
	return rounds
}

// directRounds times connect-all directly (production cookie, the host's
// own epmd, no gateway) to the nodes of each host in turn, one engineer VM
// per host, and returns the slowest host's sorted rounds.
func directRounds(t *testing.T, c *clusterEnv, nodes []clusterNode) []int {
	t.Helper()
	byIP := map[string][]string{}
	var ips []string
	for _, n := range nodes {
		if _, ok := byIP[n.ip]; !ok {
			ips = append(ips, n.ip)
		}
		byIP[n.ip] = append(byIP[n.ip], "'"+n.name+"'")
	}
	var worst []int
	for _, ip := range ips {
		hosts := map[string]string{}
		for _, n := range nodes {
			if n.ip == ip {
				hosts[strings.SplitN(n.name, "@", 2)[1]] = ip
			}
		}
		first := c.nodes[strings.Trim(byIP[ip][0], "'")]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, "erl", "-sname", "direct", "-hidden", "-setcookie", prodCookie, "-noshell",
			"-eval", "Ns = ["+strings.Join(byIP[ip], ",")+"], [true = net_kernel:connect_node(N) || N <- Ns], "+connectRounds)
		cmd.Env = append(os.Environ(), "ERL_EPMD_PORT="+strconv.Itoa(first.Opts.EpmdPort), "ERL_INETRC="+beamtest.WriteInetrc(t, hosts))
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("direct engineer on %s: %v\n%s", ip, err, out)
		}
		if r := sortedRounds(string(out)); len(r) == 5 && (worst == nil || r[2] > worst[2]) {
			worst = r
		}
	}
	return worst
}
