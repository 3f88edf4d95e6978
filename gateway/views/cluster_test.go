package views

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"beamgate/gateway/dist/term"
)

// cannedCaller is a member's Caller in the tests of merging: cannedView
// answers with its res or err instead of calling production.
type cannedCaller struct {
	res   Result
	err   error
	block bool         // wait for the view's context to end
	calls atomic.Int64 // views run
}

func (c *cannedCaller) Call(context.Context, term.Atom, term.Atom, []term.Term) (term.Term, error) {
	return nil, errors.New("cannedCaller: no calls")
}

// cannedView is the view function runCluster is given in place of the
// command's: it returns the member's canned answer.
func cannedView(ctx context.Context, c Caller) (Result, error) {
	cc := c.(*cannedCaller)
	cc.calls.Add(1)
	if cc.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return cc.res, cc.err
}

func topOf(processes, sampled int, values ...int64) *TopResult {
	r := &TopResult{By: "memory", Processes: processes, Sampled: sampled}
	for i, v := range values {
		r.Rows = append(r.Rows, ProcRow{Pid: fmt.Sprintf("<0.%d.0>", 100+i), Name: fmt.Sprintf("p%d", v),
			CurrentFunction: "gen_server:loop/7", Value: v})
	}
	return r
}

func runCanned(t *testing.T, members []Member, opts ClusterOptions, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runCluster(context.Background(), members, opts, args, &out, cannedView)
	return out.String(), err
}

// tableRows returns the lines of the table under the heading, up to the
// blank line before the down lines, split into cells.
func tableRows(t *testing.T, text string) (head []string, rows [][]string) {
	t.Helper()
	lines := strings.Split(text, "\n")
	if len(lines) < 2 {
		t.Fatalf("no table in %q", text)
	}
	for i, l := range lines[1:] {
		if l == "" {
			break
		}
		cells := strings.Fields(l)
		if i == 0 {
			head = cells
			continue
		}
		rows = append(rows, cells)
	}
	return head, rows
}

func TestClusterTopMergeAndCut(t *testing.T) {
	members := []Member{
		{Node: "a@h1", Caller: &cannedCaller{res: topOf(100, 100, 5000, 300, 10)}},
		{Node: "b@h2", Caller: &cannedCaller{res: topOf(200, 150, 7000, 300, 20)}},
		{Node: "c@h3", Caller: &cannedCaller{res: topOf(34, 34, 6000, 1)}},
	}
	out, err := runCanned(t, members, ClusterOptions{Cluster: "prismatic"}, "top", "--by", "memory", "-n", "4")
	if err != nil {
		t.Fatal(err)
	}
	if first := strings.SplitN(out, "\n", 2)[0]; first != "top by memory across 3 of 3 nodes of prismatic: 334 processes (284 sampled)" {
		t.Errorf("heading %q", first)
	}
	head, rows := tableRows(t, out)
	if strings.Join(head, " ") != "NODE PID NAME OR INITIAL CALL CURRENT FUNCTION MEMORY" {
		t.Errorf("header %q", head)
	}
	// Merged by value, cut to 4; the tie at 300 keeps member order.
	want := [][2]string{{"b@h2", "p7000"}, {"c@h3", "p6000"}, {"a@h1", "p5000"}, {"a@h1", "p300"}}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), out)
	}
	for i, w := range want {
		if rows[i][0] != w[0] || rows[i][2] != w[1] {
			t.Errorf("row %d = %v, want node %s name %s", i, rows[i], w[0], w[1])
		}
	}
	if strings.Contains(out, "down:") {
		t.Errorf("down lines with every node up:\n%s", out)
	}

	// The default cut is Top's, 10; values are formatted as Top's.
	var many []int64
	for i := range 8 {
		many = append(many, int64(2048*(i+1)))
	}
	members = []Member{{Node: "a@h1", Caller: &cannedCaller{res: topOf(8, 8, many...)}},
		{Node: "b@h2", Caller: &cannedCaller{res: topOf(8, 8, many...)}}}
	out, err = runCanned(t, members, ClusterOptions{}, "top")
	if err != nil {
		t.Fatal(err)
	}
	if _, rows := tableRows(t, out); len(rows) != 10 || rows[0][len(rows[0])-1] != "KiB" || rows[0][len(rows[0])-2] != "16.0" {
		t.Errorf("default cut or value format:\n%s", out)
	}
	if !strings.HasPrefix(out, "top by memory across 2 of 2 nodes: 16 processes\n") {
		t.Errorf("heading without a cluster name or sampling:\n%s", out)
	}
}

func TestClusterETSAndBinariesMerge(t *testing.T) {
	ets := func(tables int, rows ...TableRow) *ETSResult {
		return &ETSResult{By: "size", Tables: tables, Rows: rows}
	}
	members := []Member{
		{Node: "a@h1", Caller: &cannedCaller{res: ets(10, TableRow{Name: "small", Size: 5, Memory: 9000}, TableRow{Name: "mid", Size: 50})}},
		{Node: "b@h2", Caller: &cannedCaller{res: ets(12, TableRow{Name: "big", Size: 500, Memory: 10})}},
	}
	out, err := runCanned(t, members, ClusterOptions{Cluster: "eu"}, "ets", "--by", "size", "-n", "2")
	if err != nil {
		t.Fatal(err)
	}
	head, rows := tableRows(t, out)
	if !strings.HasPrefix(out, "ets tables by size across 2 of 2 nodes of eu: 22 tables\n") || head[0] != "NODE" ||
		len(rows) != 2 || rows[0][0] != "b@h2" || rows[0][1] != "big" || rows[1][0] != "a@h1" || rows[1][1] != "mid" {
		t.Errorf("ets --by size -n 2:\n%s", out)
	}

	bins := func(rows ...BinRow) *BinariesResult { return &BinariesResult{Processes: 3, Sampled: 3, Rows: rows} }
	members = []Member{
		{Node: "a@h1", Caller: &cannedCaller{res: bins(BinRow{Pid: "<0.1.0>", Name: "one", Bytes: 100, Binaries: 1})}},
		{Node: "b@h2", Caller: &cannedCaller{res: bins(BinRow{Pid: "<0.2.0>", Name: "two", Bytes: 300, Binaries: 2},
			BinRow{Pid: "<0.3.0>", Name: "three", Bytes: 50, Binaries: 1})}},
	}
	out, err = runCanned(t, members, ClusterOptions{}, "binaries")
	if err != nil {
		t.Fatal(err)
	}
	head, rows = tableRows(t, out)
	if head[0] != "NODE" || len(rows) != 3 || rows[0][2] != "two" || rows[1][2] != "one" || rows[2][2] != "three" || rows[2][0] != "b@h2" {
		t.Errorf("binaries:\n%s", out)
	}
}

func statsOf(util float64, procs int64) *Stats {
	return &Stats{WindowMs: 1000, SchedulersOnline: 4, Utilisation: util, RunQueue: 3,
		Memory:    []MemoryRow{{Type: "total", Bytes: 3 << 20}, {Type: "processes", Bytes: 1 << 20}},
		Processes: procs, ProcessLimit: 1000, Atoms: 500, AtomLimit: 1000, ETSTables: 20, ETSLimit: 100,
		IOInputPerSec: 2048, IOOutputPerSec: 100}
}

func TestClusterStatsRowPerNode(t *testing.T) {
	members := []Member{
		{Node: "a@h1", Caller: &cannedCaller{res: statsOf(0.25, 100)}},
		{Node: "b@h2", Caller: &cannedCaller{err: errors.New("connection refused")}},
		{Node: "c@h3", Caller: &cannedCaller{res: statsOf(0.5, 250)}},
	}
	out, err := runCanned(t, members, ClusterOptions{Cluster: "eu"}, "stats", "--window", "2s")
	var partial *PartialError
	if !errors.As(err, &partial) || partial.Nodes != 3 || len(partial.Failed) != 1 || partial.Failed[0].Node != "b@h2" {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasPrefix(out, "stats over 2s across 2 of 3 nodes of eu\n") {
		t.Errorf("heading:\n%s", out)
	}
	head, rows := tableRows(t, out)
	if head[0] != "NODE" || len(rows) != 3 {
		t.Fatalf("stats table:\n%s", out)
	}
	if rows[0][0] != "a@h1" || rows[0][1] != "25.0%" || rows[1][0] != "b@h2" || rows[1][1] != "down" || rows[2][0] != "c@h3" || rows[2][1] != "50.0%" {
		t.Errorf("rows not in member order:\n%s", out)
	}
	if !strings.Contains(out, "250 (25.0%)") || !strings.Contains(out, "3.0 MiB") || !strings.Contains(out, "2.0 KiB/s") {
		t.Errorf("stats columns:\n%s", out)
	}
	if !strings.HasSuffix(out, "\ndown: b@h2: connection refused\n") {
		t.Errorf("down line:\n%s", out)
	}
}

// clusterJSON is what a test reads of a ClusterResult's JSON.
type clusterJSON struct {
	Cluster string           `json:"cluster"`
	Command string           `json:"command"`
	By      string           `json:"by"`
	Nodes   []map[string]any `json:"nodes"`
	Rows    []map[string]any `json:"rows"`
}

func TestClusterJSONRowsCarryNode(t *testing.T) {
	for _, c := range []struct {
		cmd    string
		res    func(i int) Result
		wantIn string // a field of every row besides node
	}{
		{"top", func(i int) Result { return topOf(10, 10, int64(i*100+1), int64(i*100+2)) }, "pid"},
		{"ets", func(i int) Result {
			return &ETSResult{By: "memory", Tables: 1, Rows: []TableRow{{Name: fmt.Sprint("t", i), Memory: int64(i)}}}
		}, "protection"},
		{"binaries", func(i int) Result {
			return &BinariesResult{Processes: 1, Sampled: 1, Rows: []BinRow{{Pid: "<0.5.0>", Bytes: int64(i + 1)}}}
		}, "bytes"},
		{"stats", func(i int) Result { return statsOf(0.1*float64(i), 10) }, "utilisation"},
	} {
		members := []Member{
			{Node: "a@h1", Caller: &cannedCaller{res: c.res(1)}},
			{Node: "b@h2", Caller: &cannedCaller{err: errors.New("nodedown")}},
			{Node: "c@h3", Caller: &cannedCaller{res: c.res(2)}},
		}
		out, err := runCanned(t, members, ClusterOptions{Cluster: "prismatic"}, c.cmd, "--json")
		var partial *PartialError
		if !errors.As(err, &partial) {
			t.Errorf("%s: err = %v", c.cmd, err)
		}
		if strings.Count(out, "\n") != 1 {
			t.Errorf("%s: not one JSON line: %q", c.cmd, out)
		}
		var got clusterJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: %v: %s", c.cmd, err, out)
		}
		if got.Cluster != "prismatic" || got.Command != c.cmd || len(got.Nodes) != 3 {
			t.Errorf("%s: %s", c.cmd, out)
		}
		for i, n := range got.Nodes {
			wantOK := i != 1
			if n["node"] != members[i].Node || n["ok"] != wantOK || (!wantOK && n["error"] != "nodedown") {
				t.Errorf("%s: node %d = %v", c.cmd, i, n)
			}
		}
		if len(got.Rows) == 0 {
			t.Errorf("%s: no rows: %s", c.cmd, out)
		}
		for _, r := range got.Rows {
			if node, _ := r["node"].(string); node != "a@h1" && node != "c@h3" {
				t.Errorf("%s: row without its node: %v", c.cmd, r)
			}
			if _, ok := r[c.wantIn]; !ok {
				t.Errorf("%s: row without %s: %v", c.cmd, c.wantIn, r)
			}
		}
		if c.cmd == "stats" && (len(got.Rows) != 2 || got.Rows[0]["node"] != "a@h1" || got.Rows[1]["node"] != "c@h3") {
			t.Errorf("stats rows not one per node that answered, in member order: %s", out)
		}
		if c.cmd == "top" && (got.By != "memory" || got.Rows[0]["node"] != "c@h3" || got.Rows[0]["value"] != 202.0) {
			t.Errorf("top JSON not merged: %s", out)
		}
	}

	// With no node answering, rows is an empty list, not null.
	members := []Member{{Node: "a@h1", Caller: &cannedCaller{err: errors.New("x")}}}
	out, _ := runCanned(t, members, ClusterOptions{}, "top", "--json")
	if !strings.Contains(out, `"rows":[]`) {
		t.Errorf("all down: %s", out)
	}
}

func TestClusterFailingAndTimingOutNodes(t *testing.T) {
	blocked := &cannedCaller{block: true}
	members := []Member{
		{Node: "a@h1", Caller: &cannedCaller{res: topOf(10, 10, 50)}},
		{Node: "slow@h2", Caller: blocked},
		{Node: "c@h3", Caller: &cannedCaller{res: topOf(20, 20, 70)}},
		{Node: "bad@h4", Caller: &cannedCaller{err: &DeniedError{MFA: "erlang:processes/0", Rule: "heavy.read", Reason: "no"}}},
	}
	start := time.Now()
	out, err := runCanned(t, members, ClusterOptions{Cluster: "prismatic", NodeTimeout: 50 * time.Millisecond}, "top")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a blocked node held the view for %v", d)
	}
	var partial *PartialError
	if !errors.As(err, &partial) || partial.Nodes != 4 || len(partial.Failed) != 2 ||
		partial.Failed[0].Node != "slow@h2" || partial.Failed[1].Node != "bad@h4" {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the timeout is not in the error: %v", err)
	}
	var denied *DeniedError
	if !errors.As(err, &denied) || denied.Rule != "heavy.read" {
		t.Errorf("the refusal is not in the error: %v", err)
	}
	if !strings.HasPrefix(out, "top by memory across 2 of 4 nodes of prismatic: 30 processes\n") {
		t.Errorf("heading:\n%s", out)
	}
	_, rows := tableRows(t, out)
	if len(rows) != 2 || rows[0][0] != "c@h3" || rows[1][0] != "a@h1" {
		t.Errorf("the nodes that answered are not shown:\n%s", out)
	}
	// Down lines in member order.
	i := strings.Index(out, "down: slow@h2: views: no answer within 50ms: context deadline exceeded\n")
	j := strings.Index(out, "down: bad@h4: views: erlang:processes/0 refused by policy rule heavy.read: no\n")
	if i < 0 || j < 0 || i > j {
		t.Errorf("down lines:\n%s", out)
	}
}

func TestClusterAllFailed(t *testing.T) {
	members := []Member{
		{Node: "a@h1", Caller: &cannedCaller{err: errors.New("econnrefused")}},
		{Node: "b@h2", Caller: &cannedCaller{err: errors.New("nodedown")}},
		{Node: "c@h3"}, // no caller
	}
	out, err := runCanned(t, members, ClusterOptions{Cluster: "eu"}, "ets")
	var all *AllFailedError
	if !errors.As(err, &all) || len(all.Failed) != 3 {
		t.Fatalf("err = %v", err)
	}
	var partial *PartialError
	if errors.As(err, &partial) {
		t.Errorf("all failed reported as partial: %v", err)
	}
	if !strings.HasPrefix(out, "ets tables by memory across 0 of 3 nodes of eu: 0 tables\n") ||
		!strings.Contains(out, "down: a@h1: econnrefused\ndown: b@h2: nodedown\ndown: c@h3: views: no connection to the node\n") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(err.Error(), "a@h1: econnrefused") {
		t.Errorf("error text %q", err)
	}

	// stats with every node down: a down row per node.
	out, _ = runCanned(t, members[:2], ClusterOptions{}, "stats")
	if _, rows := tableRows(t, out); len(rows) != 2 || rows[0][1] != "down" || rows[1][1] != "down" {
		t.Errorf("stats all down:\n%s", out)
	}
}

// concurrencyCaller answers observer_backend:get_table_list/2 with one
// table and records how many calls are in flight at once. Each call waits
// (up to a second) for want calls to be in flight, so that a missing
// bound shows.
type concurrencyCaller struct {
	mu       sync.Mutex
	inFlight int
	max      int
	want     int
}

func newConcurrencyCaller(want int) *concurrencyCaller {
	return &concurrencyCaller{want: want}
}

func (c *concurrencyCaller) Call(ctx context.Context, m, f term.Atom, args []term.Term) (term.Term, error) {
	c.mu.Lock()
	c.inFlight++
	c.max = max(c.max, c.inFlight)
	deadline := time.Now().Add(time.Second)
	for c.inFlight < c.want && time.Now().Before(deadline) {
		c.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		c.mu.Lock()
	}
	c.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // let any surplus caller in
	c.mu.Lock()
	c.inFlight--
	c.mu.Unlock()
	return term.MakeList(etsTable("t", 1, 1)), nil
}

func TestClusterParallelBound(t *testing.T) {
	for _, c := range []struct{ parallel, want int }{{3, 3}, {0, DefaultClusterParallel}, {1, 1}} {
		caller := newConcurrencyCaller(c.want)
		members := make([]Member, 12) // a multiple of every bound: no batch waits for company
		for i := range members {
			members[i] = Member{Node: fmt.Sprintf("n%d@h", i), Caller: caller}
		}
		var out bytes.Buffer
		if err := RunCluster(context.Background(), members, ClusterOptions{Parallel: c.parallel}, []string{"ets"}, &out); err != nil {
			t.Fatal(err)
		}
		caller.mu.Lock()
		got := caller.max
		caller.mu.Unlock()
		if got != c.want {
			t.Errorf("Parallel %d: %d nodes visited at once, want %d", c.parallel, got, c.want)
		}
		if !strings.HasPrefix(out.String(), "ets tables by memory across 12 of 12 nodes: 12 tables\n") {
			t.Errorf("Parallel %d:\n%s", c.parallel, out.String())
		}
	}
}

// etsTable is one table as observer_backend:get_table_list/2 reports it.
func etsTable(name string, size, memory int64) term.Term {
	return term.MakeList(
		term.Tuple{term.Atom("name"), term.Atom(name)},
		term.Tuple{term.Atom("id"), term.Atom(name)},
		term.Tuple{term.Atom("owner"), term.Pid{Node: "prod@host", ID: 80, Creation: 1}},
		term.Tuple{term.Atom("reg_name"), term.Atom(name + "_owner")},
		term.Tuple{term.Atom("type"), term.Atom("set")},
		term.Tuple{term.Atom("size"), term.Int(size)},
		term.Tuple{term.Atom("memory"), term.Int(memory)},
		term.Tuple{term.Atom("protection"), term.Atom("public")},
	)
}

// tablesCaller answers observer_backend:get_table_list(ets, Opts) with
// its tables, or fails with err.
type tablesCaller struct {
	tables []term.Term
	err    error
}

func (c *tablesCaller) Call(_ context.Context, m, f term.Atom, args []term.Term) (term.Term, error) {
	if c.err != nil {
		return nil, c.err
	}
	if m != "observer_backend" || f != "get_table_list" || len(args) != 2 || args[0] != term.Atom("ets") {
		return nil, fmt.Errorf("unexpected call %s:%s/%d", m, f, len(args))
	}
	return term.MakeList(c.tables...), nil
}

// Through the real ets view: each node's tables come from
// observer_backend:get_table_list/2 and are merged by memory.
func TestClusterETSThroughView(t *testing.T) {
	members := []Member{
		{Node: "a@h1", Caller: &tablesCaller{tables: []term.Term{etsTable("ac_tab", 10, 4096), etsTable("sessions", 900, 1<<20)}}},
		{Node: "b@h2", Caller: &tablesCaller{err: errors.New("noconnection")}},
		{Node: "c@h3", Caller: &tablesCaller{tables: []term.Term{etsTable("cache", 5000, 8<<20), etsTable("tiny", 1, 100)}}},
	}
	var out bytes.Buffer
	err := RunCluster(context.Background(), members, ClusterOptions{Cluster: "prismatic"}, []string{"ets", "-n", "3"}, &out)
	var partial *PartialError
	if !errors.As(err, &partial) || len(partial.Failed) != 1 || partial.Failed[0].Node != "b@h2" {
		t.Fatalf("err = %v", err)
	}
	text := out.String()
	if !strings.HasPrefix(text, "ets tables by memory across 2 of 3 nodes of prismatic: 4 tables\n") {
		t.Errorf("heading:\n%s", text)
	}
	head, rows := tableRows(t, text)
	if strings.Join(head, " ") != "NODE NAME OWNER OWNER NAME TYPE SIZE MEMORY PROTECTION" {
		t.Errorf("header %q", head)
	}
	want := [][2]string{{"c@h3", "cache"}, {"a@h1", "sessions"}, {"a@h1", "ac_tab"}}
	if len(rows) != len(want) {
		t.Fatalf("rows:\n%s", text)
	}
	for i, w := range want {
		if rows[i][0] != w[0] || rows[i][1] != w[1] {
			t.Errorf("row %d = %v, want %v", i, rows[i], w)
		}
	}
	if !strings.Contains(text, "<0.80.0>  sessions_owner  set") || !strings.HasSuffix(text, "\ndown: b@h2: noconnection\n") {
		t.Errorf("output:\n%s", text)
	}

	out.Reset()
	if err := RunCluster(context.Background(), []Member{members[0], members[2]}, ClusterOptions{Cluster: "prismatic"},
		[]string{"ets", "--json", "--by", "size"}, &out); err != nil {
		t.Fatal(err)
	}
	var got clusterJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.By != "size" || len(got.Rows) != 4 || got.Rows[0]["node"] != "c@h3" || got.Rows[0]["name"] != "cache" ||
		got.Rows[1]["node"] != "a@h1" || got.Rows[1]["size"] != 900.0 || got.Nodes[0]["tables"] != 2.0 {
		t.Errorf("JSON: %s", out.String())
	}
}

func TestClusterUsage(t *testing.T) {
	members := []Member{{Node: "a@h1", Caller: &cannedCaller{res: topOf(1, 1, 1)}}}
	for _, args := range [][]string{
		{"apps"}, {"info", "<0.85.0>"}, {"info"}, {"nope"}, {"top", "--by", "cpu"}, {"top", "-n", "1000"},
		{"top", "extra"}, {"ets", "--by", "reductions"}, {"stats", "-n", "3"}, {"binaries", "--window", "1s"},
		{"top", "--bogus"},
	} {
		err := RunCluster(context.Background(), members, ClusterOptions{}, args, io.Discard)
		var u *UsageError
		if !errors.As(err, &u) {
			t.Errorf("RunCluster(%v) = %v, want a usage error", args, err)
		}
		if (args[0] == "apps" || args[0] == "info") && (u == nil || !strings.Contains(u.Msg, "takes one NODE, not a cluster")) {
			t.Errorf("RunCluster(%v) = %v", args, err)
		}
	}
	if err := RunCluster(context.Background(), members, ClusterOptions{}, []string{"top", "--watch", "500ms"}, io.Discard); !errors.Is(err, ErrWatchInterval) {
		t.Errorf("--watch 500ms: %v", err)
	}
	if err := RunCluster(context.Background(), nil, ClusterOptions{Cluster: "eu"}, []string{"top"}, io.Discard); err == nil {
		t.Error("a cluster without nodes ran")
	}
	if n := members[0].Caller.(*cannedCaller).calls.Load(); n != 0 {
		t.Errorf("refused commands ran %d views", n)
	}
}

func TestClusterSanitisesErrors(t *testing.T) {
	members := []Member{
		{Node: "a@h1", Caller: &cannedCaller{res: topOf(1, 1, 1)}},
		{Node: "evil@h2", Caller: &cannedCaller{err: errors.New("boom\x1b]0;owned\x07\x1b[2J\r\nfake: line\u009b\xff")}},
	}
	out, err := runCanned(t, members, ClusterOptions{Cluster: "eu\x1b[31m"}, "top")
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{out, err.Error()} {
		if strings.ContainsAny(s, "\x1b\x07\r\u009b") {
			t.Errorf("control characters got through: %q", s)
		}
	}
	if !strings.Contains(out, "down: evil@h2: boom?]0;owned??[2J??fake: line?\ufffd\n") || strings.Count(out, "down:") != 1 {
		t.Errorf("down line:\n%q", out)
	}
	// JSON escapes them.
	out, _ = runCanned(t, members, ClusterOptions{}, "top", "--json")
	if strings.ContainsAny(out, "\x1b\x07\r") || !strings.Contains(out, `boom\u001b]0;owned`) {
		t.Errorf("JSON: %q", out)
	}
}

func TestClusterWatch(t *testing.T) {
	for _, jsonMode := range []bool{false, true} {
		t.Run(fmt.Sprint("json=", jsonMode), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var views atomic.Int64
			view := func(vctx context.Context, c Caller) (Result, error) {
				if c.(*cannedCaller).err == nil && views.Add(1) == 3 {
					cancel()
				}
				return cannedView(vctx, c)
			}
			members := []Member{
				{Node: "a@h1", Caller: &cannedCaller{res: topOf(5, 5, 42)}},
				{Node: "b@h2", Caller: &cannedCaller{err: &DeniedError{MFA: "erlang:processes/0", Rule: "heavy.read", Reason: "no"}}},
			}
			args := []string{"top", "--watch", "1s"}
			if jsonMode {
				args = append(args, "--json")
			}
			var out bytes.Buffer
			// A node failing (even refused by policy) in every frame does not end the watch.
			if err := runCluster(ctx, members, ClusterOptions{}, args, &out, view); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if jsonMode {
				lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
				if len(lines) < 2 {
					t.Fatalf("%d JSON lines: %q", len(lines), got)
				}
				for _, l := range lines[:2] {
					var r clusterJSON
					if err := json.Unmarshal([]byte(l), &r); err != nil || len(r.Nodes) != 2 || r.Nodes[1]["ok"] != false || len(r.Rows) != 1 {
						t.Errorf("line %q: %v", l, err)
					}
				}
				return
			}
			if n := strings.Count(got, "down: b@h2: views: erlang:processes/0 refused"); n != 2 {
				t.Errorf("%d frames with the down line, want 2: %q", n, got)
			}
			if !strings.Contains(got, "refresh 2") || !strings.Contains(got, "top by memory across 1 of 2 nodes: 5 processes\x1b[K\r\n") {
				t.Errorf("frames: %q", got)
			}
		})
	}
}
