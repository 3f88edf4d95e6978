package views

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// DefaultClusterParallel is how many nodes RunCluster visits at once
// when ClusterOptions.Parallel is not set.
const DefaultClusterParallel = 4

// ClusterCommands are the commands RunCluster takes: top, ets, stats,
// binaries. apps and info take one NODE.
var ClusterCommands = []string{"top", "ets", "stats", "binaries"}

// Member is one node a cluster view visits.
type Member struct {
	Node   string // the node's name, alive@host: shown in the NODE column and on every JSON row
	Caller Caller // already policed and audited by the caller of RunCluster
}

// ClusterOptions configure RunCluster.
type ClusterOptions struct {
	Cluster     string        // the cluster's name, for the heading
	Parallel    int           // at most this many nodes are visited at once; <= 0 means DefaultClusterParallel
	NodeTimeout time.Duration // bound on one node's rendering; <= 0 means ViewTimeout
}

// NodeError is one node's failure in a cluster view.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string { return e.Node + ": " + e.Err.Error() }

// Unwrap returns the node's error.
func (e *NodeError) Unwrap() error { return e.Err }

// PartialError is RunCluster's error, in one-shot mode, when some nodes
// failed and the others answered. The output, already written, shows the
// nodes that answered and a down line per failure.
type PartialError struct {
	Nodes  int          // nodes visited
	Failed []*NodeError // in member order
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("views: %d of %d nodes failed: %s", len(e.Failed), e.Nodes, failedNames(e.Failed))
}

// Unwrap returns the nodes' errors, for errors.Is and errors.As.
func (e *PartialError) Unwrap() []error { return nodeErrs(e.Failed) }

// AllFailedError is RunCluster's error, in one-shot mode, when no node
// answered. The output, already written, lists every node's error.
type AllFailedError struct {
	Failed []*NodeError // every member, in member order
}

func (e *AllFailedError) Error() string {
	return fmt.Sprintf("views: none of the %d nodes answered: %s", len(e.Failed), failedNames(e.Failed))
}

// Unwrap returns the nodes' errors, for errors.Is and errors.As.
func (e *AllFailedError) Unwrap() []error { return nodeErrs(e.Failed) }

// failedNames lists the failed nodes and why, safe for a terminal.
func failedNames(failed []*NodeError) string {
	parts := make([]string, len(failed))
	for i, f := range failed {
		parts[i] = lineText(f.Error(), maxDownLine)
	}
	return strings.Join(parts, "; ")
}

func nodeErrs(failed []*NodeError) []error {
	out := make([]error, len(failed))
	for i, f := range failed {
		out[i] = f
	}
	return out
}

// ClusterNode is one member's outcome in a ClusterResult.
type ClusterNode struct {
	Node      string `json:"node"`
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	Processes int    `json:"processes,omitempty"` // top, binaries, stats: processes on the node
	Sampled   int    `json:"sampled,omitempty"`   // top, binaries: processes sampled
	Tables    int    `json:"tables,omitempty"`    // ets: tables on the node
}

// ClusterProcRow is a top row and the node it is on.
type ClusterProcRow struct {
	Node string `json:"node"`
	ProcRow
}

// ClusterTableRow is an ets row and the node it is on.
type ClusterTableRow struct {
	Node string `json:"node"`
	TableRow
}

// ClusterBinRow is a binaries row and the node it is on.
type ClusterBinRow struct {
	Node string `json:"node"`
	BinRow
}

// ClusterStatsRow is one node's Stats.
type ClusterStatsRow struct {
	Node string `json:"node"`
	*Stats
}

// ClusterResult is one view over every member of a cluster: the rows of
// top, ets and binaries merged into one ranking (each row names its
// node), or one Stats per node for stats.
type ClusterResult struct {
	Cluster  string        `json:"cluster"`
	Command  string        `json:"command"`
	By       string        `json:"by,omitempty"`        // top, ets: the ranking key
	WindowMs int64         `json:"window_ms,omitempty"` // top by reductions, stats: the sampling window
	Nodes    []ClusterNode `json:"nodes"`               // every member, in member order
	// Rows is []ClusterProcRow (top), []ClusterTableRow (ets),
	// []ClusterBinRow (binaries) or []ClusterStatsRow (stats, in member
	// order, nodes that answered only).
	Rows any `json:"rows"`
}

// RunCluster runs one view command on every member and writes one merged
// result to out. args are as for Run, without a node: ["top", "--by",
// "memory", "-n", "20", "--json"]. Nodes are visited at most
// opts.Parallel at a time, each bounded by opts.NodeTimeout; a node that
// fails or times out is shown as down and the others are still shown.
// With --watch it redraws until ctx ends (JSON: one line per refresh) and
// failed nodes never end the watch. In one-shot mode a *PartialError or
// *AllFailedError follows the output when nodes failed; other errors are
// *UsageError and ErrWatchInterval, as Run's.
//
// The output has one style for every row: Elixir's (ElixirStyle) with
// --elixir, or when any node that answered is an Elixir node; each node
// that answered is asked once per RunCluster (DetectElixir, policed and
// audited as its view's calls are), unless --erlang or --elixir is given.
func RunCluster(ctx context.Context, members []Member, opts ClusterOptions, args []string, out io.Writer) error {
	return runCluster(ctx, members, opts, args, out, nil)
}

// runCluster is RunCluster; a non-nil view replaces the command's view
// function (tests give canned results).
func runCluster(ctx context.Context, members []Member, opts ClusterOptions, args []string, out io.Writer, view viewFunc) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		_, err := io.WriteString(out, Help())
		return err
	}
	cmd := args[0]
	switch {
	case cmd == "apps" || cmd == "info":
		return usagef("%s takes one NODE, not a cluster", cmd)
	case !slices.Contains(ClusterCommands, cmd):
		return usagef("unknown cluster command %q: want one of %s", cmd, strings.Join(ClusterCommands, ", "))
	}
	f, err := parse(cmd, args[1:])
	if err != nil {
		return err
	}
	fn, err := viewFor(cmd, f)
	if err != nil {
		return err
	}
	if view == nil {
		view = fn
	}
	if len(members) == 0 {
		return fmt.Errorf("views: cluster %s has no nodes", lineText(opts.Cluster, maxCell))
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultClusterParallel
	}
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = ViewTimeout
	}
	ctx = withView(ctx, cmd)

	var failed []*NodeError
	st := newStyler(f.style())
	render := func(w io.Writer) error {
		var res *ClusterResult
		res, failed = clusterView(ctx, members, opts, cmd, f, view, st)
		if err := ctx.Err(); err != nil {
			return err // ended, as Run's view would, before its output
		}
		if f.json {
			return WriteJSON(w, res)
		}
		return res.WriteText(w)
	}
	switch {
	case f.watch == 0:
		if err := render(out); err != nil {
			return err
		}
		switch {
		case len(failed) == len(members):
			return &AllFailedError{Failed: failed}
		case len(failed) > 0:
			return &PartialError{Nodes: len(members), Failed: failed}
		}
		return nil
	case f.watch < MinWatchInterval:
		return ErrWatchInterval
	case f.json:
		return watchJSON(ctx, f.watch, render, out)
	}
	return Watch(ctx, f.watch, render, out)
}

// nodeOutcome is what one member's view returned.
type nodeOutcome struct {
	res    Result
	err    error
	elixir bool // the node is shown in Elixir style
}

// visit runs view on every member, at most opts.Parallel at once, and
// returns the outcomes in member order; st decides each member's style
// once its view has answered.
func visit(ctx context.Context, members []Member, opts ClusterOptions, view viewFunc, st *styler) []nodeOutcome {
	out := make([]nodeOutcome, len(members))
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i].err = ctx.Err()
				return
			}
			defer func() { <-sem }()
			out[i] = visitOne(ctx, i, m, opts.NodeTimeout, view, st)
		})
	}
	wg.Wait()
	return out
}

// visitOne runs view on member i under its own deadline, then (when it
// answered) decides its style within the same deadline.
func visitOne(ctx context.Context, i int, m Member, timeout time.Duration, view viewFunc, st *styler) nodeOutcome {
	if m.Caller == nil {
		return nodeOutcome{err: errors.New("views: no connection to the node")}
	}
	vctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := view(vctx, m.Caller)
	if err != nil && ctx.Err() == nil && errors.Is(vctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("views: no answer within %v: %w", timeout, err)
	}
	o := nodeOutcome{res: res, err: err}
	if err == nil {
		o.elixir = st.elixir(vctx, i, m.Caller)
	}
	return o
}

// clusterView visits every member and merges what they returned; failed
// lists the members that did not answer, in member order. The merged
// rows are in Elixir style when any member that answered is.
func clusterView(ctx context.Context, members []Member, opts ClusterOptions, cmd string, f *runFlags, view viewFunc, st *styler) (res *ClusterResult, failed []*NodeError) {
	outcomes := visit(ctx, members, opts, view, st)
	elixir := false
	res = &ClusterResult{Cluster: opts.Cluster, Command: cmd, Nodes: make([]ClusterNode, len(members))}
	switch cmd {
	case "top", "ets":
		res.By = f.by
		if res.By == "" {
			res.By = "memory"
		}
	case "stats":
		w := f.window
		if w <= 0 {
			w = time.Second
		}
		res.WindowMs = min(w, MaxWindow).Milliseconds()
	}
	// Empty, not nil: JSON says "rows": [].
	procs, tables, bins, stats := []ClusterProcRow{}, []ClusterTableRow{}, []ClusterBinRow{}, []ClusterStatsRow{}
	for i, m := range members {
		o := outcomes[i]
		node := &res.Nodes[i]
		node.Node = m.Node
		if o.err == nil {
			o.err = fmt.Errorf("views: %s returned no result", cmd)
			switch r := o.res.(type) {
			case *TopResult:
				if r != nil && cmd == "top" {
					o.err = nil
					node.Processes, node.Sampled = r.Processes, r.Sampled
					res.WindowMs = max(res.WindowMs, r.WindowMs)
					for _, row := range r.Rows {
						procs = append(procs, ClusterProcRow{Node: m.Node, ProcRow: row})
					}
				}
			case *ETSResult:
				if r != nil && cmd == "ets" {
					o.err = nil
					node.Tables = r.Tables
					for _, row := range r.Rows {
						tables = append(tables, ClusterTableRow{Node: m.Node, TableRow: row})
					}
				}
			case *BinariesResult:
				if r != nil && cmd == "binaries" {
					o.err = nil
					node.Processes, node.Sampled = r.Processes, r.Sampled
					for _, row := range r.Rows {
						bins = append(bins, ClusterBinRow{Node: m.Node, BinRow: row})
					}
				}
			case *Stats:
				if r != nil && cmd == "stats" {
					o.err = nil
					node.Processes = int(r.Processes)
					stats = append(stats, ClusterStatsRow{Node: m.Node, Stats: r})
				}
			}
		}
		if o.err != nil {
			node.Error = o.err.Error()
			failed = append(failed, &NodeError{Node: m.Node, Err: o.err})
			continue
		}
		node.OK = true
		elixir = elixir || o.elixir
	}
	// Rows arrive in member order; a stable sort keeps ties in it.
	switch cmd {
	case "top":
		slices.SortStableFunc(procs, func(a, b ClusterProcRow) int { return desc(a.Value, b.Value) })
		res.Rows = procs[:min(len(procs), clampRows(f.n, 10))]
	case "ets":
		key := func(r ClusterTableRow) int64 { return r.Memory }
		if res.By == "size" {
			key = func(r ClusterTableRow) int64 { return r.Size }
		}
		slices.SortStableFunc(tables, func(a, b ClusterTableRow) int { return desc(key(a), key(b)) })
		res.Rows = tables[:min(len(tables), clampRows(f.n, 20))]
	case "binaries":
		slices.SortStableFunc(bins, func(a, b ClusterBinRow) int { return desc(a.Bytes, b.Bytes) })
		res.Rows = bins[:min(len(bins), clampRows(f.n, 10))]
	case "stats":
		res.Rows = stats
	}
	if elixir {
		ElixirStyle(res)
	}
	return res, failed
}

// desc orders larger values first.
func desc(a, b int64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// maxDownLine bounds a down line's error text in characters.
const maxDownLine = 300

// lineText makes s safe for a terminal, as cell does, bounded to limit
// characters: control characters (escape sequences in an error a node
// sent) become '?'.
func lineText(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit-3]) + "..."
	}
	return s
}

// WriteText implements Result: a heading, one table with a NODE column,
// then a down line per node that did not answer.
func (r *ClusterResult) WriteText(w io.Writer) error {
	answered := 0
	processes, sampled := 0, 0
	for _, n := range r.Nodes {
		if n.OK {
			answered++
			processes += n.Processes
			sampled += n.Sampled
		}
	}
	scope := fmt.Sprintf("across %d of %d nodes", answered, len(r.Nodes))
	if r.Cluster != "" {
		scope += " of " + lineText(r.Cluster, maxCell)
	}
	counted := func(what string) string {
		s := fmt.Sprintf(": %d %s", processes, what)
		if sampled < processes {
			s += fmt.Sprintf(" (%d sampled)", sampled)
		}
		return s
	}
	var head string
	var t *table
	switch rows := r.Rows.(type) {
	case []ClusterProcRow:
		head = "top by " + r.By
		if r.WindowMs > 0 {
			head += fmt.Sprintf(" over %v", time.Duration(r.WindowMs)*time.Millisecond)
		}
		head += " " + scope + counted("processes")
		t = newTable("NODE", "PID", "NAME OR INITIAL CALL", "CURRENT FUNCTION", ">"+valueHeader(r.By))
		for _, row := range rows {
			v := itoa(row.Value)
			if r.By == "memory" || r.By == "total_heap_size" {
				v = valueText(r.By, row.Value)
			}
			t.add(row.Node, row.Pid, row.Name, row.CurrentFunction, v)
		}
	case []ClusterTableRow:
		tables := 0
		for _, n := range r.Nodes {
			tables += n.Tables
		}
		head = fmt.Sprintf("ets tables by %s %s: %d tables", r.By, scope, tables)
		t = newTable("NODE", "NAME", "OWNER", "OWNER NAME", "TYPE", ">SIZE", ">MEMORY", "PROTECTION")
		for _, row := range rows {
			name := row.Name
			if row.ID != "" {
				name += " " + row.ID
			}
			t.add(row.Node, name, row.Owner, row.OwnerName, row.Type, itoa(row.Size), bytesText(row.Memory), row.Protection)
		}
	case []ClusterBinRow:
		head = "refc binaries referenced (process_info binary, no GC) " + scope + counted("processes")
		t = newTable("NODE", "PID", "NAME OR INITIAL CALL", "CURRENT FUNCTION", ">BINARY MEMORY", ">REFS")
		for _, row := range rows {
			t.add(row.Node, row.Pid, row.Name, row.CurrentFunction, bytesText(row.Bytes), itoa(row.Binaries))
		}
	case []ClusterStatsRow:
		head = fmt.Sprintf("stats over %v %s", time.Duration(r.WindowMs)*time.Millisecond, scope)
		t = statsTable(r.Nodes, rows)
	default:
		head = r.Command + " " + scope
		t = newTable("NODE")
		if r.Command == "stats" {
			t = statsTable(r.Nodes, nil)
		}
	}
	if _, err := fmt.Fprintln(w, head); err != nil {
		return err
	}
	if err := t.write(w); err != nil {
		return err
	}
	var down strings.Builder
	for _, n := range r.Nodes {
		if !n.OK {
			fmt.Fprintf(&down, "down: %s: %s\n", lineText(n.Node, maxCell), lineText(n.Error, maxDownLine))
		}
	}
	if down.Len() == 0 {
		return nil
	}
	_, err := io.WriteString(w, "\n"+down.String())
	return err
}

// statsTable is one row per node in member order: rows are the nodes that
// answered, in member order; the others get a down row.
func statsTable(nodes []ClusterNode, rows []ClusterStatsRow) *table {
	t := newTable("NODE", ">UTIL", ">RUN QUEUE", ">PROCESSES", ">MEMORY", ">ATOMS", ">ETS", ">IO IN/S", ">IO OUT/S")
	j := 0
	for _, n := range nodes {
		if !n.OK || j >= len(rows) || rows[j].Stats == nil {
			t.add(n.Node, "down")
			continue
		}
		s := rows[j].Stats
		j++
		var total int64
		for _, m := range s.Memory {
			if m.Type == "total" {
				total = m.Bytes
			}
		}
		t.add(n.Node, fmt.Sprintf("%.1f%%", s.Utilisation*100), itoa(s.RunQueue),
			usage(s.Processes, s.ProcessLimit), bytesText(total), usage(s.Atoms, s.AtomLimit),
			usage(s.ETSTables, s.ETSLimit),
			bytesText(int64(s.IOInputPerSec))+"/s", bytesText(int64(s.IOOutputPerSec))+"/s")
	}
	return t
}

// usage prints a count and its share of its limit.
func usage(used, limit int64) string {
	if limit <= 0 {
		return itoa(used)
	}
	return fmt.Sprintf("%d (%.1f%%)", used, float64(used)*100/float64(limit))
}
