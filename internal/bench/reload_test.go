package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"beamgate/gateway/dist/term"
	"beamgate/internal/beamtest"
)

// TestReloadWithLiveSessions is `make bench-reload`: the bin/beamgate
// process with BEAMGATE_BENCH_SESSIONS (200) live relayed sessions, each
// its own SSH connection and hidden-node distribution connection, is sent
// SIGHUP twice. First with a user added (every session is kept): the time
// from SIGHUP to the config_reload record on disk, and every session still
// answers a call. Then with the sessions' user removed: the time from
// SIGHUP to the last session_end record. It prints the figures; they are
// kept in docs/benchmarks.md.
func TestReloadWithLiveSessions(t *testing.T) {
	if os.Getenv("BEAMGATE_BENCH") != "1" {
		t.Skip("benchmarks run with BEAMGATE_BENCH=1 (make bench-reload)")
	}
	beamtest.RequireErl(t)
	n := envInt("BEAMGATE_BENCH_SESSIONS", 200)
	prodEpmd := beamtest.StartEpmdOn(t, beamtest.ProductionIP)
	beamtest.StartProduction(t, beamtest.Options{Name: prodName, Cookie: prodCookie, BindIP: beamtest.ProductionIP, EpmdPort: prodEpmd})
	gw := startBeamgate(t, prodEpmd, beamtest.FreePort(t), n, 0)
	cookie := gw.loadCookie(t)
	t0 := time.Now()
	sessions, err := openSessions(gw, n, cookie)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSessions(sessions) })
	t.Logf("%d sessions open in %v", n, time.Since(t0).Round(time.Millisecond))

	reload := func(conf string) time.Time {
		t.Helper()
		if err := os.WriteFile(gw.confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		if err := syscall.Kill(gw.pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		return at
	}
	// records returns the audit records of event since at, in every file
	// of the log (SIGHUP also rotates it).
	records := func(event string, at time.Time) []map[string]any {
		paths, _ := filepath.Glob(gw.auditPath + "*")
		var data []byte
		for _, p := range paths {
			b, _ := os.ReadFile(p)
			data = append(append(data, b...), '\n')
		}
		var out []map[string]any
		for _, l := range strings.Split(string(data), "\n") {
			if !strings.Contains(l, `"event":"`+event+`"`) {
				continue
			}
			var r map[string]any
			if json.Unmarshal([]byte(l), &r) != nil {
				continue
			}
			if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["time"])); err == nil && !ts.Before(at) {
				r["at"] = ts
				out = append(out, r)
			}
		}
		return out
	}
	wait := func(what string, done func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !done() {
			if time.Now().After(deadline) {
				syscall.Kill(gw.pid, syscall.SIGQUIT) // the goroutines, where the reload is stuck
				time.Sleep(time.Second)
				log, _ := os.ReadFile(gw.logPath)
				t.Fatalf("%s: not within 60 s; the gateway's log ends:\n%s", what, tail(string(log), 20000))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// 1. A user added: every session is kept.
	carol := beamtest.PublicKey(t, beamtest.NewSSHKey(t, t.TempDir(), "carol"))
	added := strings.Replace(gw.conf, "users:\n", fmt.Sprintf("users:\n  carol:\n    keys: [%q]\n    roles: [observer]\n", carol), 1)
	at := reload(added)
	var rec map[string]any
	wait("the config_reload record", func() bool {
		rs := records("config_reload", at)
		if len(rs) > 0 {
			rec = rs[0]
		}
		return rec != nil
	})
	kept := rec["at"].(time.Time).Sub(at)
	detail, _ := rec["detail"].(map[string]any)
	if detail["sessions_kept"] != fmt.Sprint(n) || detail["sessions_cut"] != "0" {
		t.Fatalf("reload adding a user: %v", detail)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, s := range sessions {
		if v, err := s.dist.Call(ctx, "erlang", "node", nil); err != nil || v != term.Atom(prodName) {
			t.Fatalf("session %d after the reload: %v, %v", i, v, err)
		}
	}

	// 2. The sessions' user removed: every session is cut.
	removed := strings.Replace(gw.conf, "  load:\n", "  load_gone:\n", 1)
	at = reload(removed)
	wait("every session's end", func() bool { return len(records("session_end", at)) >= n })
	ends := records("session_end", at)
	last := ends[0]["at"].(time.Time)
	for _, r := range ends {
		if ts := r["at"].(time.Time); ts.After(last) {
			last = ts
		}
	}
	cut := last.Sub(at)
	fmt.Printf("RELOAD: sessions=%d kept_reload=%v (in-gateway %v) cut_all=%v\n", n, kept.Round(time.Microsecond), detail["took"], cut.Round(time.Microsecond))
	t.Logf("SIGHUP with %d live sessions, a user added: config_reload on disk after %v (the gateway's own count: %v), all %d sessions kept and answering",
		n, kept.Round(time.Microsecond), detail["took"], n)
	t.Logf("SIGHUP removing the sessions' user: the last of %d session_end records after %v", n, cut.Round(time.Microsecond))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
