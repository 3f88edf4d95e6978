package views

import (
	"context"
	"slices"
	"strings"
	"testing"

	"beamgate/gateway/dist/term"
)

// noSpawnProfile allows what top's per-process path calls and no
// collector spawn.
const noSpawnProfile = `name: nospawn
calls:
  - rule: procs.list
    mfa: [erlang:processes/0, proc_lib:translate_initial_call/1]
  - rule: procs.info
    mfa: [erlang:process_info/2]
    args: [pid, any]
`

// callOnly hides everything of a Caller but Call: a caller that cannot
// spawn.
type callOnly struct{ Caller }

func (c callOnly) Call(ctx context.Context, m, f term.Atom, args []term.Term) (term.Term, error) {
	return c.Caller.Call(ctx, m, f, args)
}

// TestTopCollector100k runs top on 100,000 processes with observer's
// collector and with one call per process (a caller that cannot spawn),
// checks both name the culprit and logs the times.
func TestTopCollector100k(t *testing.T) {
	f := startFixture(t)
	f.prod.SpawnProcesses(t, 100000)
	t.Logf("production runs %d processes", f.prod.ProcessCount(t))
	collector := f.caller(t, "readonly")
	perPid := NewPolicedCaller(callOnly{f.conn}, collector.cfg)
	for _, tt := range []struct {
		args    []string
		culprit string
	}{
		{[]string{"top", "--by", "memory"}, "memory_hog"},
		{[]string{"top", "--by", "reductions", "--window", "1s"}, "busy_hog"},
		{[]string{"top", "--by", "message_queue_len"}, "mailbox_hog"},
	} {
		for _, c := range []struct {
			name string
			c    Caller
		}{{"collector", collector}, {"per pid", perPid}} {
			t.Logf("%s:", c.name)
			out := runView(t, c.c, append(tt.args, "-n", "3")...)
			if row := firstRow(t, out, "PID"); !containsField(row, tt.culprit) {
				t.Errorf("%s %v: first row %q, want %s\n%s", c.name, tt.args, row, tt.culprit, out)
			}
		}
	}

	// The collector spawn was audited as allowed by observer.collectors.
	found := false
	for _, r := range f.auditRecords(t) {
		if r.MFA == "observer_backend:procs_info/1" {
			found = true
			if r.Rule != "observer.collectors" || r.Detail["view"] != "top" || r.Detail["spawn"] != "1" {
				t.Errorf("collector audit record %+v", r)
			}
		}
	}
	if !found {
		t.Error("no audit record for the collector spawn")
	}
}

// TestTopCollectorRefused: a profile without the collector falls back to
// one call per process, and the refusal is audited.
func TestTopCollectorRefused(t *testing.T) {
	f := startFixture(t)
	c := f.caller(t, writeProfile(t, noSpawnProfile))
	out := runView(t, c, "top", "--by", "memory", "-n", "3")
	if row := firstRow(t, out, "PID"); !containsField(row, "memory_hog") {
		t.Errorf("first row %q, want memory_hog\n%s", row, out)
	}
	refused := false
	for _, r := range f.auditRecords(t) {
		if r.MFA == "observer_backend:procs_info/1" {
			refused = r.Decision != "" && !r.Write && r.Rule != "observer.collectors"
			t.Logf("collector audit record: decision %s rule %s reason %s", r.Decision, r.Rule, r.Reason)
		}
	}
	if !refused {
		t.Error("no audit record of the refused collector spawn")
	}
}

func TestParseProcInfo(t *testing.T) {
	pid := term.Pid{Node: "prod@h", ID: 93}
	rec := term.Tuple{term.Atom("etop_proc_info"), pid, term.Int(100), term.Int(7), term.Atom("memory_hog"),
		term.Int(0), term.Tuple{term.Atom("prim_eval"), term.Atom("receive"), term.Int(2)}, term.Int(3)}
	p, ok := parseProcInfo(rec)
	if !ok || p.pid != pid || p.memory != 100 || p.reductions != 7 || p.msgq != 3 ||
		p.name != "memory_hog" || p.current != "prim_eval:receive/2" {
		t.Errorf("record: %+v %v", p, ok)
	}
	kv := func(k string, v term.Term) term.Term { return term.Tuple{term.Atom(k), v} }
	pl := term.MakeList(kv("pid", pid), kv("registered_name", term.MakeList()),
		kv("initial_call", term.Tuple{term.Atom("m"), term.Atom("f"), term.Int(1)}), kv("memory", term.Int(5)))
	if p, ok := parseProcInfo(pl); !ok || p.name != "m:f/1" || p.memory != 5 {
		t.Errorf("proplist: %+v %v", p, ok)
	}
	for _, bad := range []term.Term{term.Atom("x"), term.Tuple{term.Atom("etop_proc_info")}, term.MakeList(kv("memory", term.Int(1)))} {
		if _, ok := parseProcInfo(bad); ok {
			t.Errorf("parseProcInfo(%v) ok", bad)
		}
	}
}

func FuzzProcInfo(f *testing.F) {
	pid := term.Pid{Node: "prod@h", ID: 93}
	for _, seed := range []term.Term{
		term.Tuple{term.Atom("etop_proc_info"), pid, term.Int(100), term.Int(7), term.Atom("memory_hog"),
			term.Int(0), term.Tuple{term.Atom("prim_eval"), term.Atom("receive"), term.Int(2)}, term.Int(3)},
		term.MakeList(term.Tuple{term.Atom("pid"), pid}, term.Tuple{term.Atom("memory"), term.Int(1)}),
	} {
		enc, _ := term.Marshal(seed)
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _, err := term.Decode(data, &term.Limits{MaxElements: 4096})
		if err != nil {
			return
		}
		parseProcInfo(v)
	})
}

// containsField reports whether a table row has field as one of its cells.
func containsField(row, field string) bool {
	return slices.Contains(strings.Fields(row), field)
}
