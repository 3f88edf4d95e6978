package views

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/gateway/dist/term"
	"beamgate/policy"
)

// countingCaller answers every call with reply and counts the calls.
type countingCaller struct {
	calls atomic.Int64
	reply func(m, f term.Atom, args []term.Term) term.Term
}

func (c *countingCaller) Call(_ context.Context, m, f term.Atom, args []term.Term) (term.Term, error) {
	c.calls.Add(1)
	if c.reply == nil {
		return term.Atom("ok"), nil
	}
	return c.reply(m, f, args), nil
}

func openLog(t *testing.T) (*audit.Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func readRecords(t *testing.T, path string) []audit.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	// The view records only: not the log's own (log_start).
	if err := audit.Query(f, audit.Filter{Event: audit.EventView}, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func readonlyCaller(t *testing.T, next Caller, log *audit.Log) *PolicedCaller {
	t.Helper()
	prof, err := policy.Load("readonly")
	if err != nil {
		t.Fatal(err)
	}
	if log == nil { // the test does not read the records, but a caller needs a log
		log, _ = openLog(t)
	}
	return NewPolicedCaller(next, PolicedConfig{Profile: prof, Engineer: "beamgate_view@bastion",
		Target: "prod@host", Audit: log, User: "alice", Cluster: "eu"})
}

func TestPolicedCallerRefusesAndAudits(t *testing.T) {
	log, path := openLog(t)
	next := &countingCaller{}
	c := readonlyCaller(t, next, log)
	ctx := withView(context.Background(), "test")

	_, err := c.Call(ctx, "ets", "tab2list", []term.Term{term.Atom("big_table")})
	var denied *DeniedError
	if !errors.As(err, &denied) || denied.Rule != "heavy.read" || denied.MFA != "ets:tab2list/1" {
		t.Fatalf("ets:tab2list: %v", err)
	}
	// process_info(P, messages) is refused by its argument rule.
	pid := term.Pid{Node: "prod@host", ID: 85, Creation: 1}
	if _, err := c.Call(ctx, "erlang", "process_info", []term.Term{pid, term.Atom("messages")}); !errors.As(err, &denied) || denied.Rule != "process.info" {
		t.Fatalf("process_info messages: %v", err)
	}
	if n := next.calls.Load(); n != 0 {
		t.Fatalf("%d refused calls reached production", n)
	}
	if _, err := c.Call(ctx, "erlang", "memory", nil); err != nil {
		t.Fatalf("erlang:memory: %v", err)
	}
	if n := next.calls.Load(); n != 1 {
		t.Fatalf("allowed call made %d times", n)
	}
	recs := readRecords(t, path)
	want := []struct{ mfa, decision, rule string }{
		{"ets:tab2list/1", "deny", "heavy.read"},
		{"erlang:process_info/2", "deny", "process.info"},
		{"erlang:memory/0", "allow", "system.stats"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d audit records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		r := recs[i]
		if r.Event != audit.EventView || r.MFA != w.mfa || string(r.Decision) != w.decision || r.Rule != w.rule ||
			r.User != "alice" || r.Target != "prod@host" || r.Cluster != "eu" || r.Detail["view"] != "test" || r.Detail["calls"] != "1" {
			t.Errorf("record %d = %+v, want %v", i, r, w)
		}
	}
}

func TestPolicedCallerAuditsBeforeCalling(t *testing.T) {
	log, _ := openLog(t)
	next := &countingCaller{}
	c := readonlyCaller(t, next, log)
	log.Close()
	_, err := c.Call(context.Background(), "erlang", "memory", nil)
	if !errors.Is(err, ErrAudit) {
		t.Fatalf("call with a closed audit log: %v", err)
	}
	if n := next.calls.Load(); n != 0 {
		t.Fatalf("the call was made without its audit record")
	}
}

func TestPolicedCallerBatchOneRecordPerDecision(t *testing.T) {
	log, path := openLog(t)
	next := &countingCaller{}
	c := readonlyCaller(t, next, log)
	argv := make([][]term.Term, 250)
	for i := range argv {
		argv[i] = []term.Term{term.Pid{Node: "prod@host", ID: uint32(i), Creation: 1}, term.Atom("memory")}
	}
	argv[7] = []term.Term{argv[7][0], term.Atom("messages")}
	res := callMany(context.Background(), c, "erlang", "process_info", argv, 8)
	var denied *DeniedError
	if !errors.As(res[7].err, &denied) || res[0].err != nil || res[249].err != nil {
		t.Fatalf("batch results: %v %v %v", res[0].err, res[7].err, res[249].err)
	}
	if n := next.calls.Load(); n != 249 {
		t.Fatalf("%d calls made, want 249", n)
	}
	recs := readRecords(t, path)
	if len(recs) != 2 || recs[0].Detail["calls"] != "249" || recs[0].Decision != "allow" ||
		recs[1].Detail["calls"] != "1" || recs[1].Decision != "deny" {
		t.Fatalf("records: %+v", recs)
	}
}

// The atom budget applies to views: unknown atoms a view would send are
// counted; atoms production sent back are free.
func TestPolicedCallerAtomBudget(t *testing.T) {
	next := &countingCaller{reply: func(m, f term.Atom, args []term.Term) term.Term {
		return term.MakeList(term.Atom("seen_on_prod"))
	}}
	c := readonlyCaller(t, next, nil)
	ctx := context.Background()
	if _, err := c.Call(ctx, "erlang", "registered", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := c.Call(ctx, "erlang", "whereis", []term.Term{term.Atom("seen_on_prod")}); err != nil {
			t.Fatalf("known atom, call %d: %v", i, err)
		}
	}
	var denied *DeniedError
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Call(ctx, "erlang", "whereis", []term.Term{term.Atom("fresh_" + strings.Repeat("x", i))})
	}
	if !errors.As(err, &denied) || denied.Rule != "atom-budget" {
		t.Fatalf("fresh atoms never hit the budget: %v", err)
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(2)
	rel, ok := l.Acquire("alice", "prod@a")
	if !ok {
		t.Fatal("first acquire refused")
	}
	rel2, ok := l.Acquire("alice", "prod@a")
	if !ok {
		t.Fatal("second view for alice on prod@a refused under a limit of 2")
	}
	if _, ok := l.Acquire("alice", "prod@a"); ok {
		t.Fatal("third view for alice on prod@a allowed")
	}
	if r, ok := l.Acquire("alice", "prod@b"); !ok {
		t.Fatal("other node refused")
	} else {
		r()
	}
	if r, ok := l.Acquire("bob", "prod@a"); !ok {
		t.Fatal("other user refused")
	} else {
		r()
	}
	rel()
	rel() // idempotent
	if r, ok := l.Acquire("alice", "prod@a"); !ok {
		t.Fatal("slot not freed")
	} else {
		r()
	}
	rel2()
	if len(l.running) != 0 || NewLimiter(0).Max() != DefaultViewsPerNode {
		t.Errorf("running %v after every release; default max %d", l.running, NewLimiter(0).Max())
	}
}

func TestWatchRefusesShortIntervals(t *testing.T) {
	for _, d := range []time.Duration{0, time.Millisecond, 999 * time.Millisecond} {
		if err := Watch(context.Background(), d, func(io.Writer) error { return nil }, &bytes.Buffer{}); !errors.Is(err, ErrWatchInterval) {
			t.Errorf("Watch(%v) = %v", d, err)
		}
	}
	for _, args := range [][]string{{"top", "--watch", "500ms"}, {"stats", "--watch", "0.5s", "--json"}} {
		if err := Run(context.Background(), &countingCaller{}, args, &bytes.Buffer{}); !errors.Is(err, ErrWatchInterval) {
			t.Errorf("Run(%v) = %v", args, err)
		}
	}
}

func TestWatchRedrawsInPlace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	var out bytes.Buffer
	err := Watch(ctx, time.Second, func(w io.Writer) error {
		n++
		if n == 2 {
			cancel()
		}
		_, err := io.WriteString(w, "line one\nrender "+strings.Repeat("x", n)+"\n")
		return err
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasPrefix(got, "\x1b[H\x1b[2J\x1b[H") || !strings.Contains(got, "render x\x1b[K\r\n\x1b[J") {
		t.Errorf("first frame not drawn in place: %q", got)
	}
	if strings.Contains(got, "render xx") {
		t.Errorf("a render finished after cancel was drawn: %q", got)
	}
}

func TestWatchEndsOnRefusal(t *testing.T) {
	err := Watch(context.Background(), time.Second, func(io.Writer) error {
		return &DeniedError{MFA: "x:y/0", Rule: "default", Reason: "no"}
	}, io.Discard)
	var denied *DeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("Watch = %v", err)
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		{"nope"}, {"top", "--by", "cpu"}, {"top", "-n", "1000"}, {"top", "extra"}, {"info"},
		{"info", "a", "b"}, {"apps", "-n", "3"}, {"ets", "--by", "reductions"}, {"stats", "--window", "1h"},
		{"top", "--bogus"}, {"binaries", "--window", "1s"},
	} {
		err := Run(context.Background(), &countingCaller{}, args, io.Discard)
		var u *UsageError
		if !errors.As(err, &u) {
			t.Errorf("Run(%v) = %v, want a usage error", args, err)
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), nil, []string{"help"}, &out); err != nil || !strings.Contains(out.String(), "does NOT garbage-collect") {
		t.Errorf("help: %v\n%s", err, out.String())
	}
}

func TestTableCells(t *testing.T) {
	tb := newTable("NAME", ">N")
	tb.add("evil\x1b[2Jname", "1")
	tb.add(strings.Repeat("y", 100), "22")
	var out bytes.Buffer
	if err := tb.write(&out); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(out.String(), 0x1b) {
		t.Errorf("escape sequence reached the table: %q", out.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[1], " 1") || !strings.HasSuffix(lines[2], "...  22") {
		t.Errorf("table:\n%s", out.String())
	}
}

// A PolicedCaller without an audit sink fails closed: an allowed call is
// not made, and says why.
func TestPolicedCallerWithoutAuditCallsNothing(t *testing.T) {
	prof, err := policy.Load("readonly")
	if err != nil {
		t.Fatal(err)
	}
	next := &countingCaller{}
	c := NewPolicedCaller(next, PolicedConfig{Profile: prof, Engineer: "beamgate_view@bastion", Target: "prod@host", User: "alice"})
	if _, err := c.Call(context.Background(), "erlang", "memory", nil); !errors.Is(err, ErrAudit) || !errors.Is(err, audit.ErrNoSink) {
		t.Errorf("Call without an audit sink = %v, want ErrAudit and audit.ErrNoSink", err)
	}
	if n := next.calls.Load(); n != 0 {
		t.Errorf("%d calls reached production", n)
	}
}
