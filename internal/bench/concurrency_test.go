package bench

import (
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// loadResult is what the concurrency run through beamgate measured.
type loadResult struct {
	sessions         int
	interval         time.Duration
	baseRSS, idleRSS int64 // gateway VmRSS in KiB, before and with the idle sessions
	idleP50, idleP99 time.Duration
	loadP50, loadP99 time.Duration
	cpuPct           float64       // gateway CPU during the poll load alone, % of one core
	window           time.Duration // how long cpuPct was measured
	loadCPUPct       float64       // gateway CPU while eng also timed its round trips
	pollCalls        int64
	pollErrs         int64
	pollP50, pollP99 time.Duration
	pollErr          string
	err              string
}

const (
	settle    = 2 * time.Second  // pause before reading the gateway's RSS
	cpuWindow = 10 * time.Second // gateway CPU measured under the poll load alone
)

// measureConcurrency opens p.sessions hidden-node sessions through
// beamgate, reads the gateway's RSS idle, then runs every session's poll
// loop: first alone for cpuWindow, reading the gateway's CPU time, then
// while eng times its round trips. It fills r as it goes.
func measureConcurrency(t *testing.T, p benchParams, gw *beamgateProc, eng *beamtest.Node, r *loadResult) {
	r.sessions, r.interval, r.err = p.sessions, p.interval, "failed while opening sessions"
	time.Sleep(settle)
	r.baseRSS = gw.rss(t)
	cookie := gw.loadCookie(t)
	t0 := time.Now()
	sessions, err := openSessions(gw, p.sessions, cookie)
	if err != nil {
		t.Fatalf("opening %d sessions through beamgate: %v", p.sessions, err)
	}
	t.Cleanup(func() { closeSessions(sessions) })
	t.Logf("%d sessions open in %v", len(sessions), time.Since(t0))
	time.Sleep(settle)
	r.idleRSS = gw.rss(t)

	r.err = "failed while timing round trips with idle sessions"
	r.idleP50, r.idleP99 = measureLatency(t, eng, p.calls)

	r.err = "failed under poll load"
	load := startPollLoad(sessions, p.interval, evalTimeout)
	defer load.stop()
	time.Sleep(settle)
	r.cpuPct, r.window = gatewayCPU(t, gw, func() { time.Sleep(cpuWindow) })
	r.loadCPUPct, _ = gatewayCPU(t, gw, func() { r.loadP50, r.loadP99 = measureLatency(t, eng, p.calls) })
	load.stop()
	r.pollCalls, r.pollErrs = load.calls.Load(), load.errs.Load()
	r.pollP50, r.pollP99 = load.percentile(50), load.percentile(99)
	if load.firstErr != nil {
		r.pollErr = load.firstErr.Error()
	}
	t.Logf("load: %d poll calls, %d errors (%s), poll p50 %v p99 %v; engineer p99 idle %v, loaded %v; gateway CPU %.1f%% (%.1f%% with the engineer's calls)",
		r.pollCalls, r.pollErrs, r.pollErr, r.pollP50, r.pollP99, r.idleP99, r.loadP99, r.cpuPct, r.loadCPUPct)
	closeSessions(sessions)
	r.err = ""
}

// gatewayCPU runs f and returns the gateway's CPU use meanwhile, in % of
// one core, and how long f took.
func gatewayCPU(t *testing.T, gw *beamgateProc, f func()) (pct float64, took time.Duration) {
	t.Helper()
	c0, err := procCPUTicks(gw.pid)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	f()
	took = time.Since(t0)
	c1, err := procCPUTicks(gw.pid)
	if err != nil {
		t.Fatal(err)
	}
	return float64(c1-c0) / float64(clockTicks()) / took.Seconds() * 100, took
}
