package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

// The nodes of the frames captured from real OTP nodes in
// gateway/dist/testdata: FuzzEvaluate's session sits between them, so
// that the captured frames are the engineer's own and reach past the
// identity checks.
const (
	fuzzEng      = term.Atom("eng@127.0.0.3")
	fuzzProd     = term.Atom("prod@127.0.0.2")
	fuzzCreation = 0x6b06e4ad // both nodes' creation in the capture
)

// fuzzCast is newCast on the captured nodes, with the production processes
// of the capture as the session's: prod.90 (the target of the captured
// LINK, UNLINK_ID, EXIT2 and SEND_SENDER) was spawned by the session, and
// prod.91 (the sender of the captured PAYLOAD_EXIT) linked itself to it.
var fuzzCast = func() *cast {
	c := newCast(fuzzEng, fuzzCreation, fuzzProd, fuzzCreation)
	c.own = term.Pid{Node: fuzzProd, ID: 90, Creation: fuzzCreation}
	c.linked = term.Pid{Node: fuzzProd, ID: 91, Creation: fuzzCreation}
	c.io = term.Pid{Node: fuzzProd, ID: 61, Creation: fuzzCreation}
	return c
}()

// distCorpus is the frame corpus of package dist.
var distCorpus = filepath.Join("..", "gateway", "dist", "testdata")

// distSeeds returns the frame bodies of dist's corpus: its golden frames,
// the FuzzDecodeFrame seeds and the frames in the FuzzFrameReader streams.
func distSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	bins, _ := filepath.Glob(filepath.Join(distCorpus, "frames", "*.bin"))
	for _, f := range bins {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	decode, _ := filepath.Glob(filepath.Join(distCorpus, "fuzz", "FuzzDecodeFrame", "*"))
	for _, f := range decode {
		out = append(out, corpusBytes(tb, f)...)
	}
	streams, _ := filepath.Glob(filepath.Join(distCorpus, "fuzz", "FuzzFrameReader", "*"))
	for _, f := range streams {
		for _, in := range corpusBytes(tb, f) {
			fr := dist.NewFrameReader(bytes.NewReader(in), 1<<20)
			for {
				body, err := fr.Next()
				if err != nil {
					break
				}
				if len(body) > 0 {
					out = append(out, bytes.Clone(body))
				}
			}
		}
	}
	if len(bins) == 0 || len(decode) == 0 {
		tb.Fatalf("no frame corpus under %s: FuzzEvaluate is seeded from it", distCorpus)
	}
	return out
}

// corpusBytes returns the []byte values of a "go test fuzz v1" file.
func corpusBytes(tb testing.TB, path string) [][]byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		tb.Fatalf("%s: not a go test fuzz v1 file", path)
	}
	var out [][]byte
	for _, l := range lines[1:] {
		lit, ok := strings.CutPrefix(strings.TrimSpace(l), "[]byte(")
		if !ok {
			continue // another argument, such as FuzzFrameReader's int
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		out = append(out, []byte(s))
	}
	return out
}

// fuzzProfile is readonly with limits small enough for one frame,
// evaluated twice, to reach them.
func fuzzProfile(tb testing.TB) *Profile { return withLimits(tb, 4, 1) }

// engineerLimits are the relay's limits on an engineer's frame
// (gateway/relay: term.DefaultLimits with MaxBinary the 8 MiB frame cap).
func engineerLimits() *term.Limits {
	l := term.DefaultLimits()
	l.MaxBinary = 8 << 20
	return &l
}

// FuzzEvaluate decodes a frame the way the relay's engineer reader does and
// evaluates it on a session that has spawned, linked and been asked for
// I/O by production processes; then it lets the session observe the same
// frame as if production had sent it (the relay's production reader) and
// evaluates the message again. No evaluation may panic, and no message
// may pass unless a rule that may pass it did so (see checkDecision).
func FuzzEvaluate(f *testing.F) {
	for _, b := range distSeeds(f) {
		f.Add(b, false)
		f.Add(b, true)
	}
	for _, c := range routeCases(fuzzCast) {
		b, err := dist.AppendMessage(nil, c.msg)
		if err != nil {
			continue
		}
		f.Add(b, c.mode == Audit)
	}
	prof := fuzzProfile(f)
	pass := passRules(prof)
	lim := engineerLimits()
	f.Fuzz(func(t *testing.T, frame []byte, audit bool) {
		m, err := dist.DecodeFrame(frame, lim)
		if err != nil {
			return // the relay refuses the frame before policy sees it
		}
		mode := Enforce
		if audit {
			mode = Audit
		}
		s := fuzzCast.session(t, prof, mode)
		d := s.Evaluate(m)
		checkDecision(t, s, pass, m, d)

		// The same message on a fresh session is decided alike.
		if again := fuzzCast.session(t, prof, mode).Evaluate(m); again.Verdict != d.Verdict || again.Rule != d.Rule || again.Fatal != d.Fatal {
			t.Fatalf("%v: %s by %q, then %s by %q on a fresh session", m, d.Verdict, d.Rule, again.Verdict, again.Rule)
		}

		if ctrl, off, err := dist.DecodeControl(frame, nil); err == nil {
			s.Observe(ctrl, frame[off:])
		}
		checkDecision(t, s, pass, m, s.Evaluate(m))
	})
}

// checkDecision asserts what must hold of any decision d on m.
func checkDecision(t *testing.T, s *Session, pass map[dist.Op]map[Verdict]map[string]bool, m dist.Message, d Decision) {
	t.Helper()
	op := m.Control.Op()
	if d.Op != op.String() {
		t.Fatalf("%v: Op = %q", m, d.Op)
	}
	if d.Rule == "" {
		t.Fatalf("%v: %s without a rule (%s)", m, d.Verdict, d.Reason)
	}
	if d.Verdict.Forwarded() != (d.Verdict != Deny) {
		t.Fatalf("%v: verdict %d is neither denied nor forwarded", m, d.Verdict)
	}
	if !d.Verdict.Forwarded() {
		if d.Fatal && d.Rule != "identity" {
			t.Fatalf("%v: fatal refusal by %q", m, d.Rule)
		}
		if d.Cleanup != nil && d.Answer.Kind != AnswerDown {
			t.Fatalf("%v: cleanup without a DOWN answer", m)
		}
		if d.Answer.Kind != AnswerNone && !d.Fatal && !s.isOwn(d.Answer.To) {
			t.Fatalf("%v: %s answered to %v, not to the engineer", m, d.Rule, d.Answer.To)
		}
		return
	}
	if d.Fatal || d.Answer.Kind != AnswerNone || d.Cleanup != nil {
		t.Fatalf("%v: forwarded and answered: %+v", m, d)
	}
	if d.Verdict == AllowWrite && s.mode != Audit {
		t.Fatalf("%v: allow_write by %q under %s", m, d.Rule, s.mode)
	}
	if !pass[op][d.Verdict][d.Rule] {
		t.Fatalf("%v: %s by %q, which is not a rule that may pass %s", m, d.Verdict, d.Rule, op)
	}
	if carriesCode(m) {
		t.Fatalf("%v: a fun or an export passed by %q", m, d.Rule)
	}
	for _, p := range senders(m) {
		if !s.isOwn(p) {
			t.Fatalf("%v: passed by %q for %v, not a process of the engineer", m, d.Rule, p)
		}
	}
	for _, mfa := range calledMFAs(m) {
		if rs := always.lookup(string(mfa.m), string(mfa.f), mfa.a); len(rs) > 0 && mfa.f != "module_info" {
			t.Fatalf("%v: %s:%s/%d passed by %q though %s refuses it in every profile", m, mfa.m, mfa.f, mfa.a, d.Rule, rs[0].Name)
		}
	}
	if len(s.spent) > s.prof.AtomBudget || len(s.monitors) > s.prof.MaxMonitors {
		t.Fatalf("%v: %d new atoms and %d monitors, over the profile's %d and %d", m, len(s.spent), len(s.monitors), s.prof.AtomBudget, s.prof.MaxMonitors)
	}
}

// passRules lists, per operation and verdict, the rules that may forward
// a message: route's fixed rules and, for calls and spawns, the profile's.
func passRules(p *Profile) map[dist.Op]map[Verdict]map[string]bool {
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	calls, spawns, writes := ruleNames(&p.calls), ruleNames(&p.spawns), ruleNames(&p.writes)
	rex, spawn := set("net_kernel.is_auth", "rex.features"), set()
	for n := range calls {
		rex[n], spawn[n] = true, true
	}
	for n := range spawns {
		spawn[n] = true
	}
	rexW, spawnW := set("send.registered", "default"), set("default")
	for n := range writes {
		rexW[n], spawnW[n] = true, true
	}
	both := func(allow, write map[string]bool) map[Verdict]map[string]bool {
		return map[Verdict]map[string]bool{Allow: allow, AllowWrite: write}
	}
	return map[dist.Op]map[Verdict]map[string]bool{
		dist.OpLink:                both(set("session.own"), set("link")),
		dist.OpSend:                both(set("session.own", "io.reply"), set("send")),
		dist.OpSendSender:          both(set("session.own", "io.reply"), set("send")),
		dist.OpAliasSend:           both(set(), set("send.alias")),
		dist.OpExit:                both(set("link.exit"), set("link.exit")),
		dist.OpPayloadExit:         both(set("link.exit"), set("link.exit")),
		dist.OpExit2:               both(set("session.own"), set("process.signal")),
		dist.OpPayloadExit2:        both(set("session.own"), set("process.signal")),
		dist.OpUnlinkID:            both(set("unlink"), set("unlink")),
		dist.OpUnlinkIDAck:         both(set("unlink"), set("unlink")),
		dist.OpGroupLeader:         both(set(), set("group-leader")),
		dist.OpMonitorP:            both(set("monitor"), set()),
		dist.OpDemonitorP:          both(set("monitor"), set()),
		dist.OpMonitorPExit:        both(set("monitor.down"), set()),
		dist.OpPayloadMonitorPExit: both(set("monitor.down"), set()),
		dist.OpRegSend:             both(rex, rexW),
		dist.OpSpawnRequest:        both(spawn, spawnW),
	}
}

func ruleNames(rs *ruleSet) map[string]bool {
	out := map[string]bool{}
	for _, m := range []map[mfaKey][]*Rule{rs.exact, rs.anyAr, rs.anyMod} {
		for _, rules := range m {
			for _, r := range rules {
				out[r.Name] = true
			}
		}
	}
	for _, rules := range rs.modOnly {
		for _, r := range rules {
			out[r.Name] = true
		}
	}
	return out
}

func carriesCode(m dist.Message) bool {
	code := false
	visit := func(t term.Term) bool {
		switch t.(type) {
		case term.Fun, term.Export:
			code = true
		}
		return !code
	}
	term.Walk(m.Control.Tuple(), visit)
	term.Walk(m.Payload, visit)
	return code
}

// senders are the pids a forwarded m presents as the engineer's: senders,
// group leaders, and the callers that rex and net_kernel reply to.
func senders(m dist.Message) []term.Pid {
	switch c := m.Control.(type) {
	case *dist.Link:
		return []term.Pid{c.From}
	case *dist.SendSender:
		return []term.Pid{c.From}
	case *dist.AliasSend:
		return []term.Pid{c.From}
	case *dist.Exit:
		return []term.Pid{c.From}
	case *dist.PayloadExit:
		return []term.Pid{c.From}
	case *dist.Exit2:
		return []term.Pid{c.From}
	case *dist.PayloadExit2:
		return []term.Pid{c.From}
	case *dist.UnlinkID:
		return []term.Pid{c.From}
	case *dist.UnlinkIDAck:
		return []term.Pid{c.From}
	case *dist.MonitorP:
		return []term.Pid{c.From}
	case *dist.DemonitorP:
		return []term.Pid{c.From}
	case *dist.MonitorPExit:
		if p, ok := c.From.(term.Pid); ok {
			return []term.Pid{p}
		}
	case *dist.PayloadMonitorPExit:
		if p, ok := c.From.(term.Pid); ok {
			return []term.Pid{p}
		}
	case *dist.SpawnRequest:
		return []term.Pid{c.From, c.GroupLeader}
	case *dist.RegSend:
		out := []term.Pid{c.From}
		if c.ToName != "rex" && c.ToName != "net_kernel" {
			return out
		}
		if call, ok := genCall(m.Payload); ok {
			out = append(out, call.from)
			if req, ok := call.req.(term.Tuple); ok && len(req) == 5 {
				if gl, ok := req[4].(term.Pid); ok {
					out = append(out, gl)
				}
			}
		} else if tp, ok := m.Payload.(term.Tuple); ok && len(tp) == 2 {
			if p, ok := tp[0].(term.Pid); ok {
				out = append(out, p)
			}
			if req, ok := tp[1].(term.Tuple); ok && len(req) == 5 {
				if gl, ok := req[4].(term.Pid); ok {
					out = append(out, gl)
				}
			}
		}
		return out
	}
	return nil
}

type calledMFA struct {
	m, f term.Atom
	a    int
}

// calledMFAs finds, independently of route, the functions m would have
// production call: the spawned MFA, the one erpc runs, and rex calls.
func calledMFAs(m dist.Message) []calledMFA {
	inner := func(mod, fun, args term.Term) []calledMFA {
		ma, ok1 := mod.(term.Atom)
		fa, ok2 := fun.(term.Atom)
		argv, ok3 := term.ListElems(args)
		if !ok1 || !ok2 || !ok3 {
			return nil
		}
		return []calledMFA{{ma, fa, len(argv)}}
	}
	switch c := m.Control.(type) {
	case *dist.SpawnRequest:
		args, _ := term.ListElems(m.Payload)
		switch {
		case c.Module == "erpc" && c.Function == "execute_call" && c.Arity == 4 && len(args) == 4:
			return inner(args[1], args[2], args[3])
		case c.Module == "erpc" && c.Function == "execute_cast" && c.Arity == 3 && len(args) == 3:
			return inner(args[0], args[1], args[2])
		}
		return []calledMFA{{c.Module, c.Function, c.Arity}}
	case *dist.RegSend:
		if c.ToName != "rex" {
			return nil
		}
		req := term.Term(nil)
		if call, ok := genCall(m.Payload); ok {
			req = call.req
		} else if tp, ok := m.Payload.(term.Tuple); ok && len(tp) == 2 {
			req = tp[1]
		}
		if r, ok := req.(term.Tuple); ok && len(r) == 5 {
			return inner(r[1], r[2], r[3])
		}
	}
	return nil
}

// TestFuzzCastIsTheCapture keeps fuzzCast on the captured frames' nodes.
func TestFuzzCastIsTheCapture(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(distCorpus, "frames", "05-e2p-spawn_request.bin"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := dist.DecodeFrame(body, engineerLimits())
	if err != nil {
		t.Fatal(err)
	}
	s := fuzzCast.session(t, fuzzProfile(t), Enforce)
	if d := s.Evaluate(m); d.Verdict != Allow || d.Rule != "net.identity" {
		t.Fatalf("the captured erpc:call(erlang, node): %s by %q (%s)", d.Verdict, d.Rule, d.Reason)
	}
	if n := len(distSeeds(t)); n < 15 {
		t.Fatalf("only %d seeds from %s", n, distCorpus)
	}
}
