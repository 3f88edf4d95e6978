package relay

import (
	"fmt"
	"strings"
	"testing"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
	"beamgate/policy"
)

// latencyExpr times n sequential rpc:call(P, erlang, node, []) round trips
// on the engineer node and returns {P50, P99, Max} in microseconds.
func latencyExpr(n int) string {
	return fmt.Sprintf(`P = %s, pong = net_adm:ping(P),
		[rpc:call(P, erlang, node, []) || _ <- lists:seq(1, 50)],
		Ts = lists:sort([begin T0 = erlang:monotonic_time(nanosecond), P = rpc:call(P, erlang, node, []),
		      erlang:monotonic_time(nanosecond) - T0 end || _ <- lists:seq(1, %d)]),
		N = length(Ts), {lists:nth(N div 2, Ts) div 1000, lists:nth((N * 99) div 100, Ts) div 1000, lists:last(Ts) div 1000}.`, prodAtomErl, n)
}

func parseLatency(tb testing.TB, s string) (p50, p99, max float64) {
	tb.Helper()
	if _, err := fmt.Sscanf(strings.TrimSpace(s), "{%g,%g,%g}", &p50, &p99, &max); err != nil {
		tb.Fatalf("latency reply %q: %v", s, err)
	}
	return
}

// BenchmarkRelayRoundTrip measures the relay's added round trip for
// rpc:call(N, erlang, node, []) against a direct connection to the same
// production node, in the same run: go test -run XXX -bench RelayRoundTrip ./gateway/relay
func BenchmarkRelayRoundTrip(b *testing.B) {
	f := startFixture(b, fixtureOpts{})
	const calls = 2000
	for b.Loop() {
		d50, d99, _ := parseLatency(b, f.direct.Eval(b, latencyExpr(calls)))
		r50, r99, _ := parseLatency(b, f.eng.Eval(b, latencyExpr(calls)))
		b.ReportMetric(d50, "direct-p50-µs")
		b.ReportMetric(d99, "direct-p99-µs")
		b.ReportMetric(r50, "relay-p50-µs")
		b.ReportMetric(r99, "relay-p99-µs")
		b.ReportMetric(r50-d50, "added-p50-µs")
	}
}

// procsInfoFrame builds a production→engineer frame shaped like one chunk
// of observer's Processes tab: SEND_SENDER from the collector with
// {procs_info, Collector, [ProcInfo]} for n processes.
func procsInfoFrame(tb testing.TB, n int) []byte {
	tb.Helper()
	prod := term.Atom(prodName)
	collector := term.Pid{Node: prod, ID: 900, Creation: 3}
	engPid := term.Pid{Node: "eng@eng.beamgate.test", ID: 90, Creation: 7}
	rows := make([]term.Term, n)
	for i := range rows {
		pid := term.Pid{Node: prod, ID: uint32(1000 + i), Creation: 3}
		rows[i] = term.MakeList(
			term.Tuple{term.Atom("pid"), pid},
			term.Tuple{term.Atom("registered_name"), term.Nil{}},
			term.Tuple{term.Atom("initial_call"), term.Tuple{term.Atom("proc_lib"), term.Atom("init_p"), term.Int(5)}},
			term.Tuple{term.Atom("memory"), term.Int(2688 + i)},
			term.Tuple{term.Atom("reductions"), term.Int(10 * i)},
			term.Tuple{term.Atom("message_queue_len"), term.Int(0)},
			term.Tuple{term.Atom("current_function"), term.Tuple{term.Atom("gen_server"), term.Atom("loop"), term.Int(7)}},
		)
	}
	m := dist.Message{
		Control: &dist.SendSender{From: collector, To: engPid},
		Payload: term.Tuple{term.Atom("procs_info"), collector, term.MakeList(rows...)},
	}
	frame, err := dist.AppendMessage(nil, m)
	if err != nil {
		tb.Fatal(err)
	}
	return frame
}

// BenchmarkProductionFrame is the relay's work on one production→engineer
// frame of observer's Processes tab (10,000 processes, as observer_backend
// sends them): decode the control message, update the session's policy
// state, and learn the atoms production sent.
func BenchmarkProductionFrame(b *testing.B) {
	frame := procsInfoFrame(b, 10000)
	profile, err := policy.Load("readonly")
	if err != nil {
		b.Fatal(err)
	}
	pol := policy.NewSession(policy.SessionConfig{Profile: profile, Engineer: "eng@eng.beamgate.test", EngineerCreation: 7, Production: prodName, ProductionCreation: 3})
	known := pol.Known()
	learn := (&atomLearner{set: known}).learn
	lim := term.Limits{MaxDepth: 1000, MaxElements: 1 << 30, MaxAtomLen: 255, MaxBinary: 1 << 28, MaxBigBytes: 1 << 20}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		ctrl, off, err := dist.DecodeControl(frame, nil)
		if err != nil {
			b.Fatal(err)
		}
		pol.Observe(ctrl, frame[off:])
		if _, err := term.SkipAtoms(frame[1:], &lim, learn); err != nil {
			b.Fatal(err)
		}
		if _, err := term.SkipAtoms(frame[off:], &lim, learn); err != nil {
			b.Fatal(err)
		}
	}
}
