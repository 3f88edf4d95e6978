package bench

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// benchParams are the sizes of one run; the defaults are the issue's.
type benchParams struct {
	calls    int           // rpc:call round trips timed per path (≥ 2000)
	procs    int           // idle processes spawned on production
	sessions int           // concurrent engineer sessions through beamgate
	repeats  int           // 64 MiB fetches and Processes refreshes per path (median)
	connects int           // reconnects per path (median)
	interval time.Duration // each session's poll interval
	doc      string        // results file ("-": none)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func params(t *testing.T) benchParams {
	p := benchParams{
		calls:    envInt("BEAMGATE_BENCH_CALLS", 2000),
		procs:    envInt("BEAMGATE_BENCH_PROCS", 100000),
		sessions: envInt("BEAMGATE_BENCH_SESSIONS", 200),
		repeats:  envInt("BEAMGATE_BENCH_REPEATS", 3),
		connects: envInt("BEAMGATE_BENCH_CONNECTS", 7),
		interval: time.Duration(envInt("BEAMGATE_BENCH_POLL_MS", 1000)) * time.Millisecond,
		doc:      os.Getenv("BEAMGATE_BENCH_DOC"),
	}
	if p.doc == "" {
		p.doc = beamtest.ModuleRoot(t) + "/docs/benchmarks.md"
	}
	return p
}

// evalTimeout bounds one measurement expression on an engineer node: 2,000
// round trips at OpenSSH's ≈ 44 ms take 90 s.
const evalTimeout = 10 * time.Minute

// TestBench is `make bench`: one production node, measured through a
// direct connection, OpenSSH forwarding and beamgate in the same run.
func TestBench(t *testing.T) {
	if os.Getenv("BEAMGATE_BENCH") != "1" {
		t.Skip("benchmarks run with BEAMGATE_BENCH=1 (make bench)")
	}
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t, sshdPath)
	p := params(t)
	started := time.Now()
	machine := describeMachine(t)

	prodEpmd := beamtest.StartEpmdOn(t, beamtest.ProductionIP)
	distPort := beamtest.FreePortOn(t, "127.0.0.1", beamtest.ProductionIP)
	prod := beamtest.StartProduction(t, beamtest.Options{
		Name: prodName, Cookie: prodCookie, BindIP: beamtest.ProductionIP,
		DistPort: distPort, EpmdPort: prodEpmd, EvalTimeout: evalTimeout,
	})
	prod.SpawnProcesses(t, p.procs)
	machine.otp = prod.EvalString(t, `{ok, V} = file:read_file(filename:join([code:root_dir(), "releases", erlang:system_info(otp_release), "OTP_VERSION"])), string:trim(V)`)
	t.Logf("production %s: %d processes, dist port %d", prod.Name, prod.ProcessCount(t), distPort)

	toProd := beamtest.WriteInetrc(t, map[string]string{prodHost: beamtest.ProductionIP})
	toLocal := beamtest.WriteInetrc(t, map[string]string{prodHost: "127.0.0.1"})
	res := &report{params: p, machine: machine}

	// 1. direct: the production cookie, production's own epmd.
	res.direct = runPath(t, "direct", p, prod, func(t *testing.T) *beamtest.Node {
		return startEngineer(t, "eng_direct", prodCookie, prodEpmd, toProd)
	})

	// 2. OpenSSH: ssh -N -L to epmd and to the real distribution port
	// (epmd answers with it, so the local end must use the same number).
	res.openssh = runPath(t, "openssh", p, prod, func(t *testing.T) *beamtest.Node {
		sshd := startSSHD(t)
		localEpmd := beamtest.FreePort(t)
		sshForward(t, sshd.port, sshd.user, sshd.key, []string{
			fmt.Sprintf("%d:%s:%d", localEpmd, beamtest.ProductionIP, prodEpmd),
			fmt.Sprintf("%d:%s:%d", distPort, beamtest.ProductionIP, distPort),
		}, localEpmd, distPort)
		return startEngineer(t, "eng_openssh", prodCookie, localEpmd, toLocal)
	})

	// 3. beamgate: the README recipe against the bin/beamgate process.
	var gw *beamgateProc
	res.beamgate = runPath(t, "beamgate", p, prod, func(t *testing.T) *beamtest.Node {
		localEpmd := beamtest.FreePort(t)
		gw = startBeamgate(t, prodEpmd, localEpmd, p.sessions, 0)
		cookie := sshOutput(t, gw.port, "alice", gw.aliceKey, "cookie")
		sshForward(t, gw.port, "alice", gw.aliceKey, []string{
			fmt.Sprintf("%d:%s:4369", localEpmd, prodHost),
			fmt.Sprintf("%d:%s:%d", gw.gatewayPort, prodHost, gw.gatewayPort),
		}, localEpmd, gw.gatewayPort)
		return startEngineer(t, "eng_beamgate", trimCookie(cookie), localEpmd, toLocal)
	}, func(t *testing.T, eng *beamtest.Node) {
		res.load = &loadResult{err: "not run"}
		measureConcurrency(t, p, gw, eng, res.load)
	})

	res.policy = runPolicyBench(t)
	res.elapsed = time.Since(started)
	out := res.markdown()
	fmt.Println(out)
	if p.doc != "-" {
		if err := writeResults(p.doc, out); err != nil {
			t.Errorf("write %s: %v", p.doc, err)
		} else {
			t.Logf("results written to %s", p.doc)
		}
	}
}

func trimCookie(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}

// startEngineer starts the hidden erl node an engineer would run.
func startEngineer(t *testing.T, alive, cookie string, epmdPort int, inetrc string) *beamtest.Node {
	t.Helper()
	return beamtest.Start(t, beamtest.Options{Name: alive + "@localhost", Cookie: cookie, Hidden: true,
		EpmdPort: epmdPort, Inetrc: inetrc, EvalTimeout: evalTimeout})
}

// runPath sets up one path in a subtest (its processes stop when it ends)
// and measures it; a failure is recorded in the result and the run goes on.
func runPath(t *testing.T, name string, p benchParams, prod *beamtest.Production,
	setup func(*testing.T) *beamtest.Node, extra ...func(*testing.T, *beamtest.Node)) *pathResult {
	r := &pathResult{name: name, err: "not run"}
	t.Run(name, func(t *testing.T) {
		eng := setup(t)
		if got := eng.Eval(t, `net_adm:ping(`+prodAtom+`)`); got != "pong" {
			t.Fatalf("%s: ping = %s", name, got)
		}
		r.err = "failed while measuring rpc:call"
		r.p50, r.p99 = measureLatency(t, eng, p.calls)
		t.Logf("%s: rpc:call p50 %v p99 %v", name, r.p50, r.p99)
		r.err = "failed while measuring Node.connect"
		r.connect = measureConnect(t, eng, prod, p.connects)
		for _, f := range extra {
			f(t, eng)
		}
		r.err = "failed while fetching 64 MiB"
		r.fetch = measureFetch(t, eng, p.repeats)
		r.err = "failed while refreshing Processes"
		r.procs, r.procsCount = measureProcs(t, eng, p.repeats)
		r.err = ""
	})
	return r
}
