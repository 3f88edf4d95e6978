package relay

// The relay's silence rule in virtual time (testing/synctest): a session
// ends once a leg has sent nothing, not even a tick, for Limits.Silence.

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"beamgate/audit"
)

func TestWatchdogEndsSilentLeg(t *testing.T) {
	for _, tt := range []struct {
		name   string
		silent string // "engineer" or "production"
		want   string
	}{
		{"engineer", "engineer", "the engineer's node fell silent for 1m30s"},
		{"production", "production", "production fell silent for 1m30s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				alog, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer alog.Close()
				r := New(Config{Audit: alog, Cookies: staticCookies("x"), Limits: Limits{Silence: 90 * time.Second}})
				s := &session{r: r}
				start := time.Now()
				s.engSeen.Store(start.UnixNano())
				s.prodSeen.Store(start.UnixNano())
				errc := make(chan error, 1)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() { errc <- s.watchdog(ctx) }()

				// The other leg ticks every 15 s (net_ticktime 60 s).
				for range 6 {
					time.Sleep(15 * time.Second)
					if tt.silent == "engineer" {
						s.prodSeen.Store(time.Now().UnixNano())
					} else {
						s.engSeen.Store(time.Now().UnixNano())
					}
				}
				synctest.Wait()
				select {
				case err := <-errc:
					t.Fatalf("ended at %v, before the 90 s silence limit: %v", time.Since(start), err)
				default:
				}
				err = <-errc
				if d := time.Since(start); d <= 90*time.Second || d > 92*time.Second {
					t.Errorf("ended after %v, want just past 90 s", d)
				}
				if ee, ok := err.(*EndError); !ok || !strings.Contains(ee.Reason, tt.want) {
					t.Errorf("watchdog = %v, want an EndError %q", err, tt.want)
				}
			})
		})
	}
}

// A leg that keeps ticking is never cut, however long the session runs.
func TestWatchdogKeepsTickingSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		alog, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer alog.Close()
		r := New(Config{Audit: alog, Cookies: staticCookies("x")})
		s := &session{r: r}
		s.engSeen.Store(time.Now().UnixNano())
		s.prodSeen.Store(time.Now().UnixNano())
		errc := make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { errc <- s.watchdog(ctx) }()
		for range 4 * 60 * 8 { // 8 hours of 15 s ticks on both legs
			time.Sleep(15 * time.Second)
			s.engSeen.Store(time.Now().UnixNano())
			s.prodSeen.Store(time.Now().UnixNano())
		}
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("a ticking session was ended: %v", err)
		default:
		}
		cancel()
		<-errc
	})
}
