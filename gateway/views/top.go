package views

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"beamgate/gateway/dist/term"
)

// TopKeys are the values top ranks processes by.
var TopKeys = []string{"memory", "reductions", "message_queue_len", "total_heap_size"}

// TopOptions selects what Top ranks.
type TopOptions struct {
	By     string        // one of TopKeys; "" = memory
	N      int           // rows; 0 = 10, capped at MaxRows
	Window time.Duration // reductions window; 0 = 1 s, capped at MaxWindow
}

// ProcRow is one process in a ranking.
type ProcRow struct {
	Pid             string `json:"pid"`
	Name            string `json:"name"` // registered name, or the initial call
	CurrentFunction string `json:"current_function"`
	Value           int64  `json:"value"`
}

// TopResult is the top processes by one key.
type TopResult struct {
	By        string    `json:"by"`
	WindowMs  int64     `json:"window_ms,omitempty"` // reductions: the delta's window
	Processes int       `json:"processes"`           // processes on the node
	Sampled   int       `json:"sampled"`             // processes sampled (capped at MaxSampled)
	Rows      []ProcRow `json:"rows"`
}

// Top ranks production's processes by opts.By. Reductions are the delta
// over opts.Window, as recon:proc_window/3 reports them; processes born
// during the window are not ranked.
func Top(ctx context.Context, c Caller, opts TopOptions) (*TopResult, error) {
	if opts.By == "" {
		opts.By = "memory"
	}
	if !validKey(opts.By, TopKeys) {
		return nil, fmt.Errorf("views: top --by %q: want one of %v", opts.By, TopKeys)
	}
	n := clampRows(opts.N, 10)
	window := opts.Window
	if window <= 0 {
		window = time.Second
	}
	window = min(window, MaxWindow)

	// One collector run per sample; total_heap_size is not in what the
	// collector reports, so it (and a caller that cannot spawn, or a
	// policy that refuses the collector) takes one call per process.
	if opts.By != "total_heap_size" {
		res, err := topCollected(ctx, c, opts.By, n, window)
		if !errors.Is(err, errNoCollector) {
			return res, err
		}
	}

	pids, total, err := processes(ctx, c)
	if err != nil {
		return nil, err
	}
	key := term.Atom(opts.By)
	first, err := sample(ctx, c, pids, []term.Atom{key})
	if err != nil {
		return nil, err
	}
	res := &TopResult{By: opts.By, Processes: total, Sampled: len(pids)}
	rs := make([]ranked, 0, len(first))
	if key == "reductions" {
		res.WindowMs = window.Milliseconds()
		before := make(map[term.Pid]int64, len(first))
		alive := make([]term.Pid, 0, len(first))
		for _, s := range first {
			before[s.pid] = intOr0(s.items[key])
			alive = append(alive, s.pid)
		}
		if err := sleep(ctx, window); err != nil {
			return nil, err
		}
		second, err := sample(ctx, c, alive, []term.Atom{key})
		if err != nil {
			return nil, err
		}
		for _, s := range second {
			rs = append(rs, ranked{s.pid, intOr0(s.items[key]) - before[s.pid]})
		}
	} else {
		for _, s := range first {
			rs = append(rs, ranked{s.pid, intOr0(s.items[key])})
		}
	}
	top := topN(rs, n)
	res.Rows, err = procRows(ctx, c, top, func(r ranked, id procIdentity) ProcRow {
		return ProcRow{Pid: pidText(r.pid), Name: id.name, CurrentFunction: id.current, Value: r.value}
	})
	return res, err
}

// procRows identifies the ranked processes and builds their rows;
// processes that died since they were ranked are left out.
func procRows[R any](ctx context.Context, c Caller, top []ranked, row func(ranked, procIdentity) R) ([]R, error) {
	pids := make([]term.Pid, len(top))
	for i, r := range top {
		pids[i] = r.pid
	}
	ids, err := identify(ctx, c, pids)
	if err != nil {
		return nil, err
	}
	out := make([]R, 0, len(top))
	for _, r := range top {
		if id, ok := ids[r.pid]; ok {
			out = append(out, row(r, id))
		}
	}
	return out, nil
}

func validKey(k string, keys []string) bool {
	for _, v := range keys {
		if v == k {
			return true
		}
	}
	return false
}

// WriteText implements Result.
func (r *TopResult) WriteText(w io.Writer) error {
	head := fmt.Sprintf("top by %s", r.By)
	if r.WindowMs > 0 {
		head += fmt.Sprintf(" over %v", time.Duration(r.WindowMs)*time.Millisecond)
	}
	head += fmt.Sprintf(": %d processes", r.Processes)
	if r.Sampled < r.Processes {
		head += fmt.Sprintf(" (%d sampled)", r.Sampled)
	}
	if _, err := fmt.Fprintln(w, head); err != nil {
		return err
	}
	t := newTable("PID", "NAME OR INITIAL CALL", "CURRENT FUNCTION", ">"+valueHeader(r.By))
	for _, row := range r.Rows {
		v := itoa(row.Value)
		if r.By == "memory" || r.By == "total_heap_size" {
			v = valueText(r.By, row.Value)
		}
		t.add(row.Pid, row.Name, row.CurrentFunction, v)
	}
	return t.write(w)
}

func valueHeader(by string) string {
	switch by {
	case "memory":
		return "MEMORY"
	case "reductions":
		return "REDUCTIONS"
	case "message_queue_len":
		return "MSGQ"
	case "total_heap_size":
		return "HEAP (WORDS)"
	}
	return by
}

func valueText(by string, v int64) string {
	if by == "memory" {
		return bytesText(v)
	}
	return itoa(v)
}
