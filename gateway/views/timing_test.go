package views

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// TestViewTimings100k times each view on a node with 100,000 extra
// processes and measures production's scheduler utilisation while
// top --watch 2s runs. It logs the numbers and asserts none of them.
func TestViewTimings100k(t *testing.T) {
	f := startFixture(t)
	f.prod.SpawnProcesses(t, 100000)
	t.Logf("production runs %d processes", f.prod.ProcessCount(t))
	c := f.caller(t, "readonly")
	for _, args := range [][]string{
		{"top", "--by", "memory"},
		{"top", "--by", "message_queue_len"},
		{"top", "--by", "total_heap_size"},
		{"top", "--by", "reductions", "--window", "1s"},
		{"binaries"},
		{"ets"},
		{"apps"},
		{"info", "mailbox_hog"},
		{"stats", "--window", "1s"},
	} {
		out := runView(t, c, args...)
		if len(out) == 0 {
			t.Errorf("%v printed nothing", args)
		}
	}

	// Utilisation: the test itself turns scheduler_wall_time on (a write
	// no view makes) from a process that stays alive, since the flag
	// lasts as long as the process that set it; then it compares an idle
	// window with one under top --watch 2s. busy_hog keeps one scheduler
	// busy throughout.
	if got := f.prod.Eval(t, `Parent = self(), spawn(fun() -> erlang:system_flag(scheduler_wall_time, true),
		Parent ! swt_on, receive stop -> ok end end), receive swt_on -> ok end`); got != "ok" {
		t.Fatal(got)
	}
	idle, err := StatsOf(context.Background(), f.conn, 6*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scheduler utilisation, no view running (%s): %.1f%% %v", idle.UtilisationSource, idle.Utilisation*100, idle.PerScheduler)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := Run(ctx, c, []string{"top", "--watch", "2s"}, io.Discard); err != nil {
			t.Errorf("top --watch: %v", err)
		}
	}()
	busy, err := StatsOf(context.Background(), f.conn, 10*time.Second)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scheduler utilisation during top --watch 2s (%s): %.1f%% %v", busy.UtilisationSource, busy.Utilisation*100, busy.PerScheduler)
}
