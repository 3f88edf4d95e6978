package views

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"beamgate/gateway/dist/term"
)

// Where Stats' scheduler utilisation comes from.
const (
	// UtilSchedulerWallTime: erlang:statistics(scheduler_wall_time), which
	// production already collects.
	UtilSchedulerWallTime = "scheduler_wall_time"
	// UtilRuntime: the VM's CPU time (statistics(runtime)) over the
	// window's wall time times the schedulers online. It counts every VM
	// thread, so it is an approximation; exact figures need
	// scheduler_wall_time, and turning that on is a system_flag write.
	UtilRuntime = "runtime"
)

// MemoryRow is one type of erlang:memory().
type MemoryRow struct {
	Type  string `json:"type"`
	Bytes int64  `json:"bytes"`
}

// Stats is a node's health over a short window.
type Stats struct {
	WindowMs          int64     `json:"window_ms"`
	SchedulersOnline  int64     `json:"schedulers_online"`
	Utilisation       float64   `json:"utilisation"`             // 0..1, averaged
	PerScheduler      []float64 `json:"per_scheduler,omitempty"` // scheduler_wall_time only
	UtilisationSource string    `json:"utilisation_source"`

	RunQueue      int64   `json:"run_queue"`  // total of the normal run queues
	RunQueues     []int64 `json:"run_queues"` // per normal run queue
	DirtyCPUQueue int64   `json:"dirty_cpu_run_queue"`

	Memory []MemoryRow `json:"memory"`

	Processes    int64 `json:"processes"`
	ProcessLimit int64 `json:"process_limit"`
	Ports        int64 `json:"ports"`
	PortLimit    int64 `json:"port_limit"`
	Atoms        int64 `json:"atoms"`
	AtomLimit    int64 `json:"atom_limit"`
	ETSTables    int64 `json:"ets_tables"`
	ETSLimit     int64 `json:"ets_limit"`

	IOInput        int64   `json:"io_input"`  // bytes since start
	IOOutput       int64   `json:"io_output"` // bytes since start
	IOInputPerSec  float64 `json:"io_input_per_sec"`
	IOOutputPerSec float64 `json:"io_output_per_sec"`
}

var statsCounts = []term.Atom{
	"schedulers_online", "process_count", "process_limit", "port_count", "port_limit",
	"atom_count", "atom_limit", "ets_count", "ets_limit",
}

// StatsOf samples production's scheduler utilisation, IO and counters
// over window (0 = 1 s, capped at MaxWindow).
func StatsOf(ctx context.Context, c Caller, window time.Duration) (*Stats, error) {
	if window <= 0 {
		window = time.Second
	}
	window = min(window, MaxWindow)
	s := &Stats{}

	argv := make([][]term.Term, len(statsCounts))
	for i, a := range statsCounts {
		argv[i] = []term.Term{a}
	}
	counts := callMany(ctx, c, "erlang", "system_info", argv, len(argv))
	dst := []*int64{&s.SchedulersOnline, &s.Processes, &s.ProcessLimit, &s.Ports, &s.PortLimit,
		&s.Atoms, &s.AtomLimit, &s.ETSTables, &s.ETSLimit}
	for i, r := range counts {
		if r.err != nil {
			return nil, r.err
		}
		*dst[i] = intOr0(r.val)
	}

	mem, err := c.Call(ctx, "erlang", "memory", nil)
	if err != nil {
		return nil, err
	}
	elems, _ := term.ListElems(mem)
	for _, e := range elems {
		if tp, ok := e.(term.Tuple); ok && len(tp) == 2 {
			s.Memory = append(s.Memory, MemoryRow{Type: termText(tp[0]), Bytes: intOr0(tp[1])})
		}
	}

	rq, err := c.Call(ctx, "erlang", "statistics", []term.Term{term.Atom("run_queue_lengths")})
	if err != nil {
		return nil, err
	}
	// Normal run queues first, then the dirty CPU run queue.
	qs, _ := term.ListElems(rq)
	if len(qs) > 1 {
		s.DirtyCPUQueue = intOr0(qs[len(qs)-1])
		qs = qs[:len(qs)-1]
	}
	for _, q := range qs {
		n := intOr0(q)
		s.RunQueues = append(s.RunQueues, n)
		s.RunQueue += n
	}

	before, err := statsSample(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, window); err != nil {
		return nil, err
	}
	after, err := statsSample(ctx, c)
	if err != nil {
		return nil, err
	}
	// The window as production measured it (wall_clock), which does not
	// count our round trips.
	s.WindowMs = after.wallMs - before.wallMs
	s.IOInput, s.IOOutput = after.in, after.out
	if secs := float64(s.WindowMs) / 1000; secs > 0 {
		s.IOInputPerSec = float64(after.in-before.in) / secs
		s.IOOutputPerSec = float64(after.out-before.out) / secs
	}
	if before.swt != nil && after.swt != nil {
		s.UtilisationSource = UtilSchedulerWallTime
		s.PerScheduler, s.Utilisation = wallTimeUtil(before.swt, after.swt, s.SchedulersOnline)
	} else {
		s.UtilisationSource = UtilRuntime
		if s.WindowMs > 0 && s.SchedulersOnline > 0 {
			s.Utilisation = float64(after.runtimeMs-before.runtimeMs) / float64(s.WindowMs*s.SchedulersOnline)
			s.Utilisation = min(max(s.Utilisation, 0), 1)
		}
	}
	return s, nil
}

type statsPoint struct {
	in, out           int64
	runtimeMs, wallMs int64
	swt               map[int64][2]int64 // scheduler id -> {active, total}; nil when off
}

// statsSample reads the counters Stats takes deltas of: one batch of
// erlang:statistics/1 calls.
func statsSample(ctx context.Context, c Caller) (statsPoint, error) {
	items := []term.Atom{"io", "runtime", "wall_clock", "scheduler_wall_time"}
	argv := make([][]term.Term, len(items))
	for i, a := range items {
		argv[i] = []term.Term{a}
	}
	res := callMany(ctx, c, "erlang", "statistics", argv, len(argv))
	var p statsPoint
	for _, r := range res {
		if r.err != nil {
			return p, r.err
		}
	}
	if io, ok := res[0].val.(term.Tuple); ok && len(io) == 2 { // {{input, I}, {output, O}}
		if in, ok := io[0].(term.Tuple); ok && len(in) == 2 {
			p.in = intOr0(in[1])
		}
		if out, ok := io[1].(term.Tuple); ok && len(out) == 2 {
			p.out = intOr0(out[1])
		}
	}
	if rt, ok := res[1].val.(term.Tuple); ok && len(rt) == 2 {
		p.runtimeMs = intOr0(rt[0])
	}
	if wc, ok := res[2].val.(term.Tuple); ok && len(wc) == 2 {
		p.wallMs = intOr0(wc[0])
	}
	if l, ok := term.ListElems(res[3].val); ok && res[3].val != term.Undefined {
		p.swt = map[int64][2]int64{}
		for _, e := range l {
			if tp, ok := e.(term.Tuple); ok && len(tp) == 3 {
				p.swt[intOr0(tp[0])] = [2]int64{intOr0(tp[1]), intOr0(tp[2])}
			}
		}
	}
	return p, nil
}

// wallTimeUtil is each normal scheduler's active share of the window and
// their average (scheduler ids 1..online; dirty schedulers left out).
func wallTimeUtil(before, after map[int64][2]int64, online int64) ([]float64, float64) {
	ids := make([]int64, 0, len(after))
	for id := range after {
		if id >= 1 && id <= online {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var per []float64
	var act, tot int64
	for _, id := range ids {
		a, b := after[id], before[id]
		da, dt := a[0]-b[0], a[1]-b[1]
		u := 0.0
		if dt > 0 {
			u = float64(da) / float64(dt)
		}
		per = append(per, u)
		act, tot = act+da, tot+dt
	}
	if tot == 0 {
		return per, 0
	}
	return per, float64(act) / float64(tot)
}

// WriteText implements Result.
func (s *Stats) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "scheduler utilisation over %dms: %.1f%% (%s", s.WindowMs, s.Utilisation*100, s.UtilisationSource)
	if s.UtilisationSource == UtilRuntime {
		b.WriteString(": VM CPU time / wall time x schedulers; scheduler_wall_time is off, turning it on is a write")
	}
	b.WriteString(")\n")
	if len(s.PerScheduler) > 0 {
		b.WriteString("per scheduler:")
		for i, u := range s.PerScheduler {
			fmt.Fprintf(&b, " %d:%.0f%%", i+1, u*100)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "run queues: %d total, per scheduler %v, dirty cpu %d\n", s.RunQueue, s.RunQueues, s.DirtyCPUQueue)
	fmt.Fprintf(&b, "io: in %s (%s/s), out %s (%s/s)\n\n", bytesText(s.IOInput), bytesText(int64(s.IOInputPerSec)),
		bytesText(s.IOOutput), bytesText(int64(s.IOOutputPerSec)))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	t := newTable("COUNT", ">USED", ">LIMIT", ">USE")
	for _, c := range []struct {
		name      string
		used, lim int64
	}{{"processes", s.Processes, s.ProcessLimit}, {"ports", s.Ports, s.PortLimit},
		{"atoms", s.Atoms, s.AtomLimit}, {"ets tables", s.ETSTables, s.ETSLimit}} {
		pct := ""
		if c.lim > 0 {
			pct = fmt.Sprintf("%.1f%%", float64(c.used)*100/float64(c.lim))
		}
		t.add(c.name, itoa(c.used), itoa(c.lim), pct)
	}
	if err := t.write(w); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	m := newTable("MEMORY", ">BYTES", ">")
	for _, r := range s.Memory {
		m.add(r.Type, itoa(r.Bytes), bytesText(r.Bytes))
	}
	return m.write(w)
}
