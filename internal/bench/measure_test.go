package bench

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// The production node every path reaches, as engineers name it.
const (
	prodHost = "prod-01"
	prodName = "prismatic@" + prodHost
	prodAtom = "'" + prodName + "'"
)

// fetchBytes is the size of the term fetched in one go (64 MiB).
const fetchBytes = 64 << 20

// pathResult is what one path (direct, OpenSSH, beamgate) measured.
type pathResult struct {
	name       string
	p50, p99   time.Duration // rpc:call(P, erlang, node, []) round trip
	fetch      time.Duration // median time to fetch a 64 MiB binary
	procs      time.Duration // median observer Processes refresh
	procsCount int           // processes the refresh listed
	connect    time.Duration // median net_kernel:connect_node/1
	err        string        // why the path is incomplete
}

// latencyExpr times n sequential rpc:call(P, erlang, node, []) round trips
// after warm calls and returns {P50, P99, Max} in nanoseconds.
func latencyExpr(warm, n int) string {
	return fmt.Sprintf(`P = %s, pong = net_adm:ping(P),
		[P = rpc:call(P, erlang, node, []) || _ <- lists:seq(1, %d)],
		Ts = lists:sort([begin T0 = erlang:monotonic_time(nanosecond), P = rpc:call(P, erlang, node, []),
		      erlang:monotonic_time(nanosecond) - T0 end || _ <- lists:seq(1, %d)]),
		N = length(Ts), Nth = fun(Q) -> lists:nth(max(1, (N * Q + 99) div 100), Ts) end,
		{Nth(50), Nth(99), lists:last(Ts)}.`, prodAtom, warm, n)
}

// fetchExpr fetches a fetchBytes binary from production once to warm up,
// then k times, and returns the k durations in nanoseconds. Production
// builds it with binary:copy(Chunk, N) from a 64 KiB chunk: a few
// milliseconds of memcpy (binary:copy(<<0>>, 64 MiB) would spend half a
// second copying single bytes and hide the transfer).
func fetchExpr(k int) string {
	return fmt.Sprintf(`P = %s, Size = %d, Chunk = binary:copy(<<0>>, 65536),
		Fetch = fun() -> T0 = erlang:monotonic_time(nanosecond),
			B = rpc:call(P, binary, copy, [Chunk, Size div 65536], 120000),
			T1 = erlang:monotonic_time(nanosecond),
			if is_binary(B), byte_size(B) =:= Size -> T1 - T0;
			   is_binary(B) -> {bad_size, byte_size(B)};
			   true -> {bad, B} end end,
		_ = Fetch(), [Fetch() || _ <- lists:seq(1, %d)].`, prodAtom, fetchBytes, k)
}

// procsExpr runs observer's Processes-tab refresh (a spawn_link'ed
// observer_backend:procs_info/1 collector streaming {procs_info, C, List}
// until it exits normally) once to warm up, then k times, and returns
// [{Nanoseconds, Processes}].
func procsExpr(k int) string {
	return fmt.Sprintf(`P = %s, process_flag(trap_exit, true),
		Refresh = fun() -> T0 = erlang:monotonic_time(nanosecond),
			C = spawn_link(P, observer_backend, procs_info, [self()]),
			Collect = fun Collect(N) -> receive
				{procs_info, C, L} -> Collect(N + length(L));
				{'EXIT', C, normal} -> {ok, N};
				{'EXIT', C, R} -> {exit, R}
				after 60000 -> timeout end end,
			case Collect(0) of {ok, N} -> {erlang:monotonic_time(nanosecond) - T0, N}; Other -> Other end end,
		_ = Refresh(), [Refresh() || _ <- lists:seq(1, %d)].`, prodAtom, k)
}

const connectExpr = `T0 = erlang:monotonic_time(nanosecond), R = net_kernel:connect_node(` + prodAtom + `),
	{erlang:monotonic_time(nanosecond) - T0, R}.`

var intRE = regexp.MustCompile(`-?\d+`)

// parseInts returns the integers of an agent reply made only of integers,
// commas, braces and brackets; anything else (badrpc, timeout, ...) is an
// error quoting the reply.
func parseInts(reply string) ([]int64, error) {
	if strings.Trim(reply, "0123456789,{}[]- ") != "" {
		return nil, fmt.Errorf("unexpected reply %.300s", reply)
	}
	var out []int64
	for _, s := range intRE.FindAllString(reply, -1) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("reply %.300s: %w", reply, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// measureLatency fills r.p50 and r.p99 from n calls on eng.
func measureLatency(t *testing.T, eng *beamtest.Node, n int) (p50, p99 time.Duration) {
	t.Helper()
	v, err := parseInts(eng.Eval(t, latencyExpr(200, n)))
	if err != nil || len(v) != 3 {
		t.Fatalf("latency on %s: %v %v", eng.Name, v, err)
	}
	return time.Duration(v[0]), time.Duration(v[1])
}

// measureFetch returns the median of k 64 MiB fetches.
func measureFetch(t *testing.T, eng *beamtest.Node, k int) time.Duration {
	t.Helper()
	v, err := parseInts(eng.Eval(t, fetchExpr(k)))
	if err != nil || len(v) != k {
		t.Fatalf("64 MiB fetch on %s: %v %v", eng.Name, v, err)
	}
	ds := make([]time.Duration, k)
	for i, ns := range v {
		ds[i] = time.Duration(ns)
	}
	t.Logf("%s: 64 MiB fetches %v", eng.Name, ds)
	return median(ds)
}

// measureProcs returns the median of k Processes refreshes and the number
// of processes the last one listed.
func measureProcs(t *testing.T, eng *beamtest.Node, k int) (time.Duration, int) {
	t.Helper()
	v, err := parseInts(eng.Eval(t, procsExpr(k)))
	if err != nil || len(v) != 2*k {
		t.Fatalf("Processes refresh on %s: %v %v", eng.Name, v, err)
	}
	ds := make([]time.Duration, k)
	for i := range k {
		ds[i] = time.Duration(v[2*i])
	}
	t.Logf("%s: Processes refreshes %v", eng.Name, ds)
	return median(ds), int(v[2*k-1])
}

// measureConnect disconnects eng from production k times and times each
// net_kernel:connect_node/1 (epmd lookup, TCP connect, handshake with the
// cookie check), waiting between rounds until production has dropped the
// previous connection. It returns the median.
func measureConnect(t *testing.T, eng *beamtest.Node, prod *beamtest.Production, k int) time.Duration {
	t.Helper()
	engAtom := beamtest.ErlAtom(eng.Name)
	var ds []time.Duration
	for i := range k {
		eng.Eval(t, `erlang:disconnect_node(`+prodAtom+`)`)
		deadline := time.Now().Add(20 * time.Second)
		for prod.Eval(t, `lists:member(`+engAtom+`, nodes(connected))`) != "false" ||
			eng.Eval(t, `lists:member(`+prodAtom+`, nodes(connected))`) != "false" {
			if time.Now().After(deadline) {
				t.Fatalf("connect round %d: %s still connected to production after disconnect", i, eng.Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		reply := eng.Eval(t, connectExpr)
		var ns int64
		if _, err := fmt.Sscanf(reply, "{%d,true}", &ns); err != nil {
			t.Fatalf("connect round %d on %s: %s", i, eng.Name, reply)
		}
		ds = append(ds, time.Duration(ns))
	}
	t.Logf("%s: connects %v", eng.Name, ds)
	return median(ds)
}
