package views

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"beamgate/audit"
)

// firstRow returns the first table row after the header line that starts
// with the column title head.
func firstRow(t *testing.T, out, head string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, head) && i+1 < len(lines) {
			return lines[i+1]
		}
	}
	t.Fatalf("no table headed %q in:\n%s", head, out)
	return ""
}

func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	return v
}

func TestViewsNameTheCulprits(t *testing.T) {
	f := startFixture(t)
	c := f.caller(t, "readonly")

	t.Run("top memory", func(t *testing.T) {
		out := runView(t, c, "top", "--by", "memory", "-n", "5")
		t.Logf("\n%s", out)
		if row := firstRow(t, out, "PID"); !strings.Contains(row, "memory_hog") {
			t.Errorf("top memory: first row %q, want memory_hog", row)
		}
		res := decodeJSON[TopResult](t, runView(t, c, "top", "--by", "memory", "-n", "5", "--json"))
		if len(res.Rows) != 5 || res.Rows[0].Name != "memory_hog" || res.Rows[0].Value < 8_000_000 {
			t.Errorf("top memory json: %+v", res)
		}
	})
	t.Run("top message_queue_len", func(t *testing.T) {
		res := decodeJSON[TopResult](t, runView(t, c, "top", "--by", "message_queue_len", "-n", "3", "--json"))
		if len(res.Rows) == 0 || res.Rows[0].Name != "mailbox_hog" || res.Rows[0].Value < 20000 {
			t.Fatalf("top message_queue_len: %+v", res)
		}
		// The mailbox grows: a second look sees more. The feeder sends
		// every 2 ms and one collector run takes about as long, so give
		// it time to send.
		time.Sleep(50 * time.Millisecond)
		again := decodeJSON[TopResult](t, runView(t, c, "top", "--by", "message_queue_len", "-n", "1", "--json"))
		if again.Rows[0].Value <= res.Rows[0].Value {
			t.Errorf("mailbox did not grow: %d then %d", res.Rows[0].Value, again.Rows[0].Value)
		}
	})
	t.Run("top reductions", func(t *testing.T) {
		out := runView(t, c, "top", "--by", "reductions", "--window", "500ms", "-n", "5")
		t.Logf("\n%s", out)
		if row := firstRow(t, out, "PID"); !strings.Contains(row, "busy_hog") {
			t.Errorf("top reductions: first row %q, want busy_hog", row)
		}
		res := decodeJSON[TopResult](t, runView(t, c, "top", "--by", "reductions", "--window", "500ms", "--json"))
		if res.WindowMs != 500 || res.Rows[0].Name != "busy_hog" {
			t.Errorf("top reductions json: %+v", res)
		}
		// A delta, not the lifetime total: well below what the process
		// has done since it started.
		info := decodeJSON[ProcInfo](t, runView(t, c, "info", "busy_hog", "--json"))
		if res.Rows[0].Value >= info.Reductions {
			t.Errorf("reductions over the window %d >= lifetime %d", res.Rows[0].Value, info.Reductions)
		}
	})
	t.Run("top total_heap_size", func(t *testing.T) {
		res := decodeJSON[TopResult](t, runView(t, c, "top", "--by", "total_heap_size", "-n", "3", "--json"))
		if res.Rows[0].Name != "memory_hog" {
			t.Errorf("top total_heap_size: %+v", res)
		}
	})
	t.Run("ets", func(t *testing.T) {
		out := runView(t, c, "ets", "-n", "5")
		t.Logf("\n%s", out)
		row := firstRow(t, out, "NAME")
		for _, want := range []string{"big_table", "table_owner", "set", "100000", "public"} {
			if !strings.Contains(row, want) {
				t.Errorf("ets: first row %q lacks %q", row, want)
			}
		}
		res := decodeJSON[ETSResult](t, runView(t, c, "ets", "--by", "size", "--json"))
		top := res.Rows[0]
		if top.Name != "big_table" || top.Size != 100000 || top.Memory < 100000*8 || top.Type != "set" ||
			top.Protection != "public" || top.OwnerName != "table_owner" || !strings.HasPrefix(top.Owner, "<0.") {
			t.Errorf("ets json: %+v", top)
		}
	})
	t.Run("binaries", func(t *testing.T) {
		out := runView(t, c, "binaries", "-n", "3")
		t.Logf("\n%s", out)
		if row := firstRow(t, out, "PID"); !strings.Contains(row, "bin_hog") {
			t.Errorf("binaries: first row %q, want bin_hog", row)
		}
		res := decodeJSON[BinariesResult](t, runView(t, c, "binaries", "--json"))
		if res.Rows[0].Name != "bin_hog" || res.Rows[0].Bytes != 8*1000000 || res.Rows[0].Binaries != 8 {
			t.Errorf("binaries json: %+v", res.Rows[0])
		}
	})
	t.Run("info", func(t *testing.T) {
		out := runView(t, c, "info", "mailbox_hog")
		t.Logf("\n%s", out)
		res := decodeJSON[ProcInfo](t, runView(t, c, "info", "mailbox_hog", "--json"))
		if res.RegisteredName != "mailbox_hog" || res.MessageQueueLen < 20000 || res.Status == "" {
			t.Errorf("info json: %+v", res)
		}
		// By pid, and a gen_server-like proc_lib process shows its real
		// initial call.
		byPid := decodeJSON[ProcInfo](t, runView(t, c, "info", res.Pid, "--json"))
		if byPid.Pid != res.Pid || byPid.RegisteredName != "mailbox_hog" {
			t.Errorf("info by pid: %+v", byPid)
		}
		sup := decodeJSON[ProcInfo](t, runView(t, c, "info", "vw_sup", "--json"))
		if sup.InitialCall != "supervisor:vw_sup/1" || !sup.TrapExit {
			t.Errorf("info vw_sup: initial call %q trap_exit %v", sup.InitialCall, sup.TrapExit)
		}
		// Never the mailbox: the text has no message contents.
		if strings.Contains(out, "work") {
			t.Errorf("info shows message contents:\n%s", out)
		}
		var runErr error
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		runErr = Run(ctx, c, []string{"info", "no_such_name_xyz"}, &strings.Builder{})
		if !errors.Is(runErr, ErrNoProcess) {
			t.Errorf("info of an unknown name: %v", runErr)
		}
	})
	t.Run("stats", func(t *testing.T) {
		out := runView(t, c, "stats", "--window", "500ms")
		t.Logf("\n%s", out)
		res := decodeJSON[Stats](t, runView(t, c, "stats", "--window", "500ms", "--json"))
		if res.UtilisationSource != UtilRuntime || res.Processes < 50 || res.ProcessLimit < res.Processes ||
			res.AtomLimit <= res.Atoms || res.Atoms == 0 || len(res.Memory) == 0 || res.Memory[0].Type != "total" ||
			len(res.RunQueues) != int(res.SchedulersOnline) || res.Utilisation <= 0 || res.ETSTables == 0 {
			t.Errorf("stats json: %+v", res)
		}
	})
	t.Run("apps readonly", func(t *testing.T) {
		out := runView(t, c, "apps")
		t.Logf("\n%s", out)
		if !strings.Contains(out, "NOT RUNNING: vw_app/vw_dead") {
			t.Errorf("apps does not flag vw_dead")
		}
		res := decodeJSON[AppsResult](t, runView(t, c, "apps", "--json"))
		app := findApp(t, res, "vw_app")
		if len(app.NotRunning) != 1 || app.NotRunning[0] != "vw_app/vw_dead" || app.SupName != "vw_sup" {
			t.Errorf("vw_app: %+v", app)
		}
		// Under readonly the gateway reads child specs itself and keeps
		// the restart type only (a redacted read).
		if res.RestartSource != RestartFromChildspec || restartOf(app.Children, "vw_dead") != "transient" || restartOf(app.Children, "vw_temp") != "temporary" {
			t.Errorf("restart under readonly: %q %q %+v", res.RestartSource, res.RestartNote, app.Children)
		}
		if findApp(t, res, "kernel").Supervisor == "" || findApp(t, res, "stdlib").Master != "" {
			t.Errorf("kernel should have a tree, stdlib none: %+v", res.Apps)
		}
	})
	t.Run("apps with childspec", func(t *testing.T) {
		cs := f.caller(t, writeProfile(t, childspecProfile))
		res := decodeJSON[AppsResult](t, runView(t, cs, "apps", "--json"))
		app := findApp(t, res, "vw_app")
		got := map[string]string{}
		var walk func([]AppChild)
		walk = func(kids []AppChild) {
			for _, k := range kids {
				got[k.ID] = k.Restart + "/" + k.State + "/" + k.Type
				walk(k.Children)
			}
		}
		walk(app.Children)
		want := map[string]string{
			"vw_worker":  "permanent/running/worker",
			"vw_dead":    "transient/undefined/worker",
			"vw_sub_sup": "permanent/running/supervisor",
			"vw_temp":    "temporary/running/worker",
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("child %s = %q, want %q", k, got[k], v)
			}
		}
		if res.RestartSource != RestartFromChildspec {
			t.Errorf("restart source: %q", res.RestartSource)
		}
	})

	// Every call was audited as a view call before it was made.
	recs := f.auditRecords(t)
	views := map[string]bool{}
	for _, r := range recs {
		if r.Event != audit.EventView || r.User != "alice" || r.Target != prodName {
			t.Fatalf("audit record %+v", r)
		}
		views[r.Detail["view"]] = true
	}
	for _, v := range []string{"top", "ets", "apps", "info", "stats", "binaries"} {
		if !views[v] {
			t.Errorf("no audit record for view %s", v)
		}
	}
	t.Logf("%d audit records", len(recs))
}

func findApp(t *testing.T, res AppsResult, name string) App {
	t.Helper()
	for _, a := range res.Apps {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no application %s in %+v", name, res.Apps)
	return App{}
}

// restartOf finds child id's restart type in a supervision tree.
func restartOf(kids []AppChild, id string) string {
	for _, k := range kids {
		if k.ID == id {
			return k.Restart
		}
		if r := restartOf(k.Children, id); r != "" {
			return r
		}
	}
	return ""
}
