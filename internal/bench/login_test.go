package bench

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// TestLoginTimings is `make bench-login`: how long one SSH command takes
// with the stock OpenSSH client, login included, as engineers run the
// views. The same run measures the gateway with TCP_QUICKACK while
// logging in (the default), the same binary without it
// (BEAMGATE_NO_QUICKACK=1), and, as the baseline, OpenSSH's sshd running
// `true` for the same client.
func TestLoginTimings(t *testing.T) {
	if os.Getenv("BEAMGATE_BENCH") != "1" {
		t.Skip("benchmarks run with BEAMGATE_BENCH=1 (make bench-login)")
	}
	beamtest.RequireErl(t)
	n := envInt("BEAMGATE_BENCH_LOGINS", 15)
	prodEpmd := beamtest.StartEpmdOn(t, beamtest.ProductionIP)
	beamtest.StartProduction(t, beamtest.Options{Name: prodName, Cookie: prodCookie, BindIP: beamtest.ProductionIP, EpmdPort: prodEpmd})
	with := startBeamgate(t, prodEpmd, beamtest.FreePort(t), 0, 0)
	t.Setenv("BEAMGATE_NO_QUICKACK", "1") // for the gateway started next
	without := startBeamgate(t, prodEpmd, beamtest.FreePort(t), 0, 0)
	sshd := startSSHD(t)

	run := func(port int, user, key string, command ...string) []time.Duration {
		t.Helper()
		var ds []time.Duration
		for range n {
			t0 := time.Now()
			sshOutput(t, port, user, key, command...)
			ds = append(ds, time.Since(t0))
		}
		return ds
	}
	summary := func(ds []time.Duration) string {
		lo, hi := ds[0], ds[0]
		for _, d := range ds {
			lo, hi = min(lo, d), max(hi, d)
		}
		return fmt.Sprintf("%v (%v–%v)", median(ds).Round(100*time.Microsecond), lo.Round(100*time.Microsecond), hi.Round(100*time.Microsecond))
	}
	base := run(sshd.port, sshd.user, sshd.key, "true")
	var b strings.Builder
	fmt.Fprintf(&b, "\n| command, %d runs each, median (min–max) | beamgate | beamgate without TCP_QUICKACK | OpenSSH sshd running `true` |\n|---|---|---|---|\n", n)
	for _, c := range [][]string{{"cookie"}, {"top", prodName, "-n", "5"}} {
		w, wo := run(with.port, "alice", with.aliceKey, c...), run(without.port, "alice", without.aliceKey, c...)
		fmt.Fprintf(&b, "| `ssh alice@… %s` | %s | %s | %s |\n", strings.Join(c, " "), summary(w), summary(wo), summary(base))
	}
	t.Log(b.String())
}
