package views

import (
	"context"
	"fmt"
	"io"

	"beamgate/gateway/dist/term"
)

// BinRow is one process and the refc binaries it references.
type BinRow struct {
	Pid             string `json:"pid"`
	Name            string `json:"name"`
	CurrentFunction string `json:"current_function"`
	Bytes           int64  `json:"bytes"`    // sum of the referenced binaries' sizes
	Binaries        int64  `json:"binaries"` // references held
}

// BinariesResult is the processes holding the most refc-binary memory.
type BinariesResult struct {
	Processes int      `json:"processes"`
	Sampled   int      `json:"sampled"`
	Rows      []BinRow `json:"rows"`
}

// Binaries ranks processes by the refc-binary memory they reference, as
// process_info(P, binary) reports it (recon's binary_memory). It never
// garbage-collects anything: unlike recon:bin_leak/1 it does not show how
// much a collection would free, and it changes nothing on production.
func Binaries(ctx context.Context, c Caller, n int) (*BinariesResult, error) {
	n = clampRows(n, 10)
	pids, total, err := processes(ctx, c)
	if err != nil {
		return nil, err
	}
	samples, err := sample(ctx, c, pids, []term.Atom{"binary"})
	if err != nil {
		return nil, err
	}
	counts := make(map[term.Pid]int64)
	rs := make([]ranked, 0, len(samples))
	for _, s := range samples {
		bins, _ := term.ListElems(s.items["binary"])
		var sum int64
		for _, b := range bins {
			if tp, ok := b.(term.Tuple); ok && len(tp) == 3 {
				sum += intOr0(tp[1])
			}
		}
		if sum > 0 {
			rs = append(rs, ranked{s.pid, sum})
			counts[s.pid] = int64(len(bins))
		}
	}
	res := &BinariesResult{Processes: total, Sampled: len(pids)}
	res.Rows, err = procRows(ctx, c, topN(rs, n), func(r ranked, id procIdentity) BinRow {
		return BinRow{Pid: pidText(r.pid), Name: id.name, CurrentFunction: id.current, Bytes: r.value, Binaries: counts[r.pid]}
	})
	return res, err
}

// WriteText implements Result.
func (r *BinariesResult) WriteText(w io.Writer) error {
	head := fmt.Sprintf("refc binaries referenced (process_info binary, no GC): %d processes", r.Processes)
	if r.Sampled < r.Processes {
		head += fmt.Sprintf(" (%d sampled)", r.Sampled)
	}
	if _, err := fmt.Fprintln(w, head); err != nil {
		return err
	}
	t := newTable("PID", "NAME OR INITIAL CALL", "CURRENT FUNCTION", ">BINARY MEMORY", ">REFS")
	for _, row := range r.Rows {
		t.add(row.Pid, row.Name, row.CurrentFunction, bytesText(row.Bytes), itoa(row.Binaries))
	}
	return t.write(w)
}
