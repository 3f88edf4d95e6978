package views

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"beamgate/gateway/dist/term"
)

var (
	fzNode = term.Atom("prod@host")
	fzP1   = term.Pid{Node: fzNode, ID: 1, Creation: 1}
	fzP2   = term.Pid{Node: fzNode, ID: 2, Creation: 1}
)

// fuzzMFAs are the calls views make; the fuzzer picks one (by the first
// input byte) whose reply is the fuzzed term, and every other call gets a
// well-formed reply so that the parsers behind it are reached.
var fuzzMFAs = []string{
	"erlang:processes", "erlang:process_info", "erlang:whereis", "erlang:registered",
	"application:which_applications", "application:info", "supervisor:count_children",
	"supervisor:which_children", "supervisor:get_childspec", "observer_backend:get_table_list",
	"erlang:system_info", "erlang:memory", "erlang:statistics", "proc_lib:translate_initial_call",
}

func mfaOf(m, f term.Atom) string { return string(m) + ":" + string(f) }

func atomList(as ...string) term.Term {
	out := make([]term.Term, len(as))
	for i, a := range as {
		out[i] = term.Atom(a)
	}
	return term.MakeList(out...)
}

func pair(k string, v term.Term) term.Term { return term.Tuple{term.Atom(k), v} }

var fzMFA = term.Tuple{term.Atom("m"), term.Atom("f"), term.Int(0)}

// saneReply is a well-formed reply to each call views make.
func saneReply(m, f term.Atom, args []term.Term) term.Term {
	switch mfaOf(m, f) {
	case "erlang:processes":
		return term.MakeList(fzP1, fzP2)
	case "erlang:process_info":
		if len(args) == 2 && args[1] == term.Atom("links") {
			return pair("links", term.MakeList(fzP1, fzP2))
		}
		return term.MakeList(pair("memory", term.Int(1)), pair("reductions", term.Int(2)),
			pair("message_queue_len", term.Int(3)), pair("total_heap_size", term.Int(4)),
			pair("binary", term.MakeList(term.Tuple{term.Int(1), term.Int(100), term.Int(1)})),
			pair("registered_name", term.Atom("x")), pair("initial_call", term.Tuple{term.Atom("application_master"), term.Atom("start_it"), term.Int(4)}),
			pair("current_function", fzMFA), pair("links", term.MakeList(fzP1, fzP2)),
			pair("garbage_collection", term.MakeList(pair("minor_gcs", term.Int(1)))),
			pair("current_stacktrace", term.MakeList(term.Tuple{term.Atom("m"), term.Atom("f"), term.Int(0),
				term.MakeList(pair("file", term.String("m.erl")), pair("line", term.Int(3)))})))
	case "erlang:whereis":
		return fzP1
	case "erlang:registered":
		return atomList("x", "init")
	case "application:which_applications":
		return term.MakeList(term.Tuple{term.Atom("app"), term.String("desc"), term.String("1.0")})
	case "application:info":
		return term.MakeList(pair("running", term.MakeList(pair("app", fzP1))))
	case "supervisor:count_children":
		return term.MakeList(pair("active", term.Int(1)))
	case "supervisor:which_children":
		return term.MakeList(term.Tuple{term.Atom("c"), fzP2, term.Atom("supervisor"), atomList("m")},
			term.Tuple{term.Atom("d"), term.Atom("undefined"), term.Atom("worker"), atomList("m")})
	case "supervisor:get_childspec":
		return term.Tuple{term.Atom("ok"), term.Map{{Key: term.Atom("restart"), Value: term.Atom("permanent")}}}
	case "observer_backend:get_table_list":
		return term.MakeList(term.MakeList(pair("name", term.Atom("t")), pair("id", term.Ref{Node: fzNode, ID: []uint32{1, 2, 3}}),
			pair("owner", fzP1), pair("size", term.Int(1)), pair("memory", term.Int(8)), pair("type", term.Atom("set")),
			pair("protection", term.Atom("public")), pair("reg_name", term.Atom("x"))))
	case "erlang:system_info":
		return term.Int(10)
	case "erlang:memory":
		return term.MakeList(pair("total", term.Int(1)))
	case "erlang:statistics":
		switch args[0] {
		case term.Atom("io"):
			return term.Tuple{pair("input", term.Int(1)), pair("output", term.Int(2))}
		case term.Atom("scheduler_wall_time"):
			return term.MakeList(term.Tuple{term.Int(1), term.Int(5), term.Int(10)})
		case term.Atom("run_queue_lengths"):
			return term.MakeList(term.Int(0), term.Int(1))
		}
		return term.Tuple{term.Int(1), term.Int(0)}
	case "proc_lib:translate_initial_call":
		return fzMFA
	}
	return term.Atom("ok")
}

// scriptedCaller answers one MFA with a fixed (fuzzed) term and every
// other with saneReply.
type scriptedCaller struct {
	mfa   string
	reply term.Term
}

func (s scriptedCaller) Call(_ context.Context, m, f term.Atom, args []term.Term) (term.Term, error) {
	if mfaOf(m, f) == s.mfa {
		return s.reply, nil
	}
	return saneReply(m, f, args), nil
}

// runAllViews runs every view against c and renders the results; it
// must never panic, whatever c answers.
func runAllViews(c Caller) {
	ctx := context.Background()
	var results []Result
	add := func(r Result, err error) {
		if err == nil {
			results = append(results, r)
		}
	}
	add(Top(ctx, c, TopOptions{By: "memory"}))
	add(Top(ctx, c, TopOptions{By: "reductions", Window: time.Nanosecond}))
	add(Binaries(ctx, c, 0))
	add(ETS(ctx, c, "size", 0))
	add(Apps(ctx, c))
	add(Info(ctx, c, "<0.1.0>"))
	add(Info(ctx, c, "x"))
	add(StatsOf(ctx, c, time.Nanosecond))
	for _, r := range results {
		_ = r.WriteText(io.Discard)
		_ = WriteJSON(io.Discard, r)
	}
}

// FuzzViewReplies feeds hostile replies from production to every view.
// Input: one byte choosing the call (fuzzMFAs), then the reply in ETF.
func FuzzViewReplies(f *testing.F) {
	for i := range fuzzMFAs {
		enc, _ := term.Marshal(saneReply(term.Atom(fuzzMFAs[i][:indexColon(fuzzMFAs[i])]), term.Atom(fuzzMFAs[i][indexColon(fuzzMFAs[i])+1:]), []term.Term{term.Atom("io")}))
		f.Add(append([]byte{byte(i)}, enc...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		reply, _, err := term.Decode(data[1:], &term.Limits{MaxElements: 4096})
		if err != nil {
			return
		}
		done := make(chan struct{})
		go func() {
			runAllViews(scriptedCaller{mfa: fuzzMFAs[int(data[0])%len(fuzzMFAs)], reply: reply})
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			panic("HANG " + fuzzMFAs[int(data[0])%len(fuzzMFAs)] + " " + term.Format(reply, 500))
		}
	})
}

func indexColon(s string) int {
	for i := range s {
		if s[i] == ':' {
			return i
		}
	}
	return 0
}

// recordingCaller keeps the replies a real production node gave.
type recordingCaller struct {
	next    Caller
	replies map[string][]term.Term
}

func (r *recordingCaller) Call(ctx context.Context, m, f term.Atom, args []term.Term) (term.Term, error) {
	v, err := r.next.Call(ctx, m, f, args)
	if err == nil && len(r.replies[mfaOf(m, f)]) < 4 {
		r.replies[mfaOf(m, f)] = append(r.replies[mfaOf(m, f)], v)
	}
	return v, err
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzViewReplies from the
// replies of a real production node. Run with VIEWS_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("VIEWS_WRITE_CORPUS") == "" {
		t.Skip("set VIEWS_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	fx := startFixture(t)
	rc := &recordingCaller{next: fx.conn, replies: map[string][]term.Term{}}
	for _, args := range [][]string{{"top", "-n", "3"}, {"binaries", "-n", "2"}, {"ets", "-n", "3"},
		{"apps"}, {"info", "mailbox_hog"}, {"info", "vw_sup"}, {"stats", "--window", "100ms"}} {
		runView(t, rc, args...)
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzViewReplies")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, mfa := range fuzzMFAs {
		for _, v := range rc.replies[mfa] {
			enc, err := term.Marshal(v)
			if err != nil || len(enc) > 16384 {
				continue
			}
			seed := append([]byte{byte(i)}, enc...)
			sum := sha256.Sum256(seed)
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
			if err := os.WriteFile(filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8])), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	t.Logf("wrote %d seeds", n)
}
