package views

import (
	"context"
	"slices"
	"strings"
	"time"

	"beamgate/gateway/dist/term"
)

// Bounds on the work one view asks of production.
const (
	// SampleConcurrency bounds the process_info calls in flight: each
	// reads one process, so no call holds production for long.
	SampleConcurrency = 32
	// MaxSampled caps the processes one view samples; beyond it the
	// result says how many were left out.
	MaxSampled = 200000
	// MaxRows caps the rows of a view (-n).
	MaxRows = 100
	// MaxWindow caps a sampling window.
	MaxWindow = 10 * time.Second
)

// procSample is one live process's reply to process_info(P, Items).
type procSample struct {
	pid   term.Pid
	items map[term.Atom]term.Term
}

// processes lists production's processes, capped at MaxSampled; total
// is how many there were.
func processes(ctx context.Context, c Caller) (pids []term.Pid, total int, err error) {
	reply, err := c.Call(ctx, "erlang", "processes", nil)
	if err != nil {
		return nil, 0, err
	}
	elems, ok := term.ListElems(reply)
	if !ok {
		return nil, 0, badReply("erlang:processes/0", reply)
	}
	pids = make([]term.Pid, 0, min(len(elems), MaxSampled))
	for _, e := range elems {
		if p, ok := e.(term.Pid); ok && len(pids) < MaxSampled {
			pids = append(pids, p)
		}
	}
	return pids, len(elems), nil
}

// sample asks process_info(P, items) of every pid, one process per call
// and at most SampleConcurrency calls in flight. A PolicedCaller checks
// every call and audits the pass before the first call leaves (one
// record per decision, with the number of calls). Processes that died
// meanwhile are left out. Any failed call (a refusal, a broken
// connection) fails the sampling.
func sample(ctx context.Context, c Caller, pids []term.Pid, items []term.Atom) ([]procSample, error) {
	itemList := make([]term.Term, len(items))
	for i, it := range items {
		itemList[i] = it
	}
	itemArg := term.MakeList(itemList...)
	argv := make([][]term.Term, len(pids))
	for i, p := range pids {
		argv[i] = []term.Term{p, itemArg}
	}
	res := callMany(ctx, c, "erlang", "process_info", argv, SampleConcurrency)
	out := make([]procSample, 0, len(pids))
	for i, r := range res {
		if r.err != nil {
			return nil, r.err
		}
		if r.val == term.Undefined {
			continue // died
		}
		out = append(out, procSample{pid: pids[i], items: props(r.val)})
	}
	return out, nil
}

// procIdentity is what a row says about which process it is.
type procIdentity struct {
	name, current string
}

// identify fetches the registered name (or initial call) and current
// function of a few processes, for the rows a view shows.
func identify(ctx context.Context, c Caller, pids []term.Pid) (map[term.Pid]procIdentity, error) {
	samples, err := sample(ctx, c, pids, []term.Atom{"registered_name", "initial_call", "current_function"})
	if err != nil {
		return nil, err
	}
	out := make(map[term.Pid]procIdentity, len(samples))
	for _, s := range samples {
		id := procIdentity{name: nameOf(s.items["registered_name"]), current: mfaText(s.items["current_function"])}
		if id.name == "" {
			id.name = initialCall(ctx, c, s.pid, s.items["initial_call"])
		}
		out[s.pid] = id
	}
	return out, nil
}

// initialCall prints a process's initial call, translated through
// proc_lib for proc_lib processes (gen_server and friends), as observer
// and recon show it.
func initialCall(ctx context.Context, c Caller, pid term.Pid, ic term.Term) string {
	text := mfaText(ic)
	if !strings.HasPrefix(text, "proc_lib:init_p/") {
		return text
	}
	if t, err := c.Call(ctx, "proc_lib", "translate_initial_call", []term.Term{pid}); err == nil {
		return mfaText(t)
	}
	return text
}

// ranked is a process and the value it is ranked by.
type ranked struct {
	pid   term.Pid
	value int64
}

// topN sorts by value, largest first (ties by pid), and keeps n.
func topN(rs []ranked, n int) []ranked {
	slices.SortFunc(rs, func(a, b ranked) int {
		switch {
		case a.value > b.value:
			return -1
		case a.value < b.value:
			return 1
		case a.pid.ID != b.pid.ID:
			return int(a.pid.ID) - int(b.pid.ID)
		}
		return int(a.pid.Serial) - int(b.pid.Serial)
	})
	return rs[:min(n, len(rs))]
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func clampRows(n, def int) int {
	if n <= 0 {
		return def
	}
	return min(n, MaxRows)
}
