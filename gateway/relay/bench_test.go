package relay

import (
	"fmt"
	"strings"
	"testing"
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
