package policy

import (
	"os"
	"strings"
	"testing"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

const (
	eng  = term.Atom("eng@laptop")
	prod = term.Atom("prod@prod-01")
)

var (
	engPid  = term.Pid{Node: eng, ID: 90, Serial: 0, Creation: 7}
	engGL   = term.Pid{Node: eng, ID: 64, Serial: 0, Creation: 7}
	prodPid = term.Pid{Node: prod, ID: 120, Serial: 0, Creation: 3}
	reqRef  = term.Ref{Node: eng, Creation: 7, ID: []uint32{1, 2, 3}}
	resRef  = term.Ref{Node: eng, Creation: 7, ID: []uint32{4, 5, 6}}
)

func newSession(t testing.TB, mode Mode) *Session {
	t.Helper()
	p, err := Load("readonly")
	if err != nil {
		t.Fatal(err)
	}
	return NewSession(SessionConfig{Profile: p, Mode: mode, Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3})
}

func erpcCall(m, f string, args ...term.Term) dist.Message {
	return dist.Message{
		Control: &dist.SpawnRequest{ReqID: reqRef, From: engPid, GroupLeader: engGL, Module: "erpc", Function: "execute_call", Arity: 4, Opts: term.MakeList(term.Atom("monitor"))},
		Payload: term.MakeList(resRef, term.Atom(m), term.Atom(f), term.MakeList(args...)),
	}
}

func spawn(m, f string, opts term.Term, args ...term.Term) dist.Message {
	return dist.Message{
		Control: &dist.SpawnRequest{ReqID: reqRef, From: engPid, GroupLeader: engGL, Module: term.Atom(m), Function: term.Atom(f), Arity: len(args), Opts: opts},
		Payload: term.MakeList(args...),
	}
}

func TestEvaluateCalls(t *testing.T) {
	tests := []struct {
		name    string
		mode    Mode
		msg     dist.Message
		verdict Verdict
		rule    string
	}{
		{"node", Enforce, erpcCall("erlang", "node"), Allow, "net.identity"},
		{"sys_info", Enforce, erpcCall("observer_backend", "sys_info"), Allow, "observer.backend"},
		{"process_info item", Enforce, erpcCall("erlang", "process_info", prodPid, term.Atom("memory")), Allow, "process.info"},
		{"process_info messages", Enforce, erpcCall("erlang", "process_info", prodPid, term.Atom("messages")), Deny, "process.info"},
		{"process_info messages in list", Audit, erpcCall("erlang", "process_info", prodPid, term.MakeList(term.Atom("memory"), term.Atom("messages"))), Deny, "process.info"},
		{"get_cookie", Audit, erpcCall("erlang", "get_cookie"), Deny, "secrets"},
		{"init args", Enforce, erpcCall("init", "get_arguments"), Deny, "secrets"},
		{"os:cmd enforce", Enforce, erpcCall("os", "cmd", term.String("id")), Deny, "os.and.files"},
		{"os:cmd audit", Audit, erpcCall("os", "cmd", term.String("id")), AllowWrite, "os.and.files"},
		{"ets insert", Enforce, erpcCall("ets", "insert", term.Atom("beamgate_orders"), term.Tuple{term.Int(9)}), Deny, "ets.write"},
		{"ets tab2list", Audit, erpcCall("ets", "tab2list", term.Atom("beamgate_orders")), Deny, "heavy.read"},
		{"nested rpc", Audit, erpcCall("rpc", "call", prod, term.Atom("os"), term.Atom("cmd"), term.MakeList(term.String("id"))), Deny, "code-wrapper"},
		{"apply", Enforce, erpcCall("erlang", "apply", term.Atom("os"), term.Atom("getpid"), term.Nil{}), Deny, "code-wrapper"},
		{"shell", Audit, erpcCall("shell", "start"), Deny, "remote-shell"},
		{"iex", Audit, erpcCall("Elixir.IEx", "start", term.Nil{}, term.Nil{}), Deny, "remote-shell"},
		{"unknown enforce", Enforce, erpcCall("lists", "reverse", term.Nil{}), Deny, "default"},
		{"unknown audit", Audit, erpcCall("lists", "reverse", term.Nil{}), AllowWrite, "default"},
		{"fun arg", Audit, erpcCall("lists", "map", term.Export{Module: "os", Function: "cmd", Arity: 1}, term.Nil{}), Deny, "no-code"},
		{"ensure_loaded observer", Enforce, erpcCall("code", "ensure_loaded", term.Atom("observer_backend")), Allow, "code.ensure_loaded"},
		{"get_table own holder", Enforce, erpcCall("observer_backend", "get_table", engPid, term.Atom("t"), term.Atom("ets")), Allow, "observer.table_viewer"},
		{"get_table prod holder", Enforce, erpcCall("observer_backend", "get_table", prodPid, term.Atom("t"), term.Atom("ets")), Deny, "observer.table_viewer"},
		{"procs_info collector", Enforce, spawn("observer_backend", "procs_info", term.MakeList(term.Atom("link")), engPid), Allow, "observer.collectors"},
		{"procs_info into prod", Enforce, spawn("observer_backend", "procs_info", term.MakeList(term.Atom("link")), prodPid), Deny, "observer.collectors"},
		{"spawn priority", Enforce, spawn("observer_backend", "procs_info", term.MakeList(term.Tuple{term.Atom("priority"), term.Atom("max")}), engPid), Deny, "spawn.options"},
		{"spawn os:cmd", Enforce, spawn("os", "cmd", term.Nil{}, term.String("id")), Deny, "os.and.files"},
		{"fetch_stats fast", Enforce, spawn("observer_backend", "fetch_stats", term.MakeList(term.Atom("link")), engPid, term.Int(1)), Deny, "observer.load_charts"},
		{"recon via", Enforce, erpcCall("recon", "info", term.Tuple{term.Atom("via"), term.Atom("m"), term.Atom("n")}), Deny, "recon.read"},
		{"module_info", Enforce, erpcCall("gen_server", "module_info", term.Atom("attributes")), Allow, "module.info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.mode)
			d := s.Evaluate(tt.msg)
			if d.Verdict != tt.verdict || d.Rule != tt.rule {
				t.Fatalf("Evaluate = %s by %q (%s), want %s by %q", d.Verdict, d.Rule, d.Reason, tt.verdict, tt.rule)
			}
			if d.Verdict == Deny && d.Answer.Kind == AnswerNone {
				t.Fatalf("a refused spawn request has no answer")
			}
		})
	}
}

func TestErpcRefusalAnswer(t *testing.T) {
	s := newSession(t, Enforce)
	d := s.Evaluate(erpcCall("os", "cmd", term.String("id")))
	a := d.Answer
	if a.Kind != AnswerErpcExit || !term.Equal(a.ResRef, resRef) || !term.Equal(a.ReqID, reqRef) || a.To != engPid {
		t.Fatalf("answer = %+v", a)
	}
	want := term.Tuple{term.Atom("beamgate_denied"), term.Tuple{term.Atom("os"), term.Atom("cmd"), term.Int(1)}}
	got := a.Value.(term.Tuple)
	if !term.Equal(got[0], want[0]) || !term.Equal(got[1], want[1]) || !strings.Contains(string(got[2].(term.Binary)), "os.and.files") {
		t.Fatalf("reason = %s", term.Format(a.Value, 200))
	}
	if d.What != "os:cmd/1" {
		t.Fatalf("What = %q", d.What)
	}
}

func TestDirectSpawnRefusalIsNoconnection(t *testing.T) {
	s := newSession(t, Enforce)
	d := s.Evaluate(spawn("os", "cmd", term.Nil{}, term.String("id")))
	if d.Answer.Kind != AnswerSpawnError || d.Answer.Value != term.Atom("noconnection") {
		t.Fatalf("answer = %+v", d.Answer)
	}
}

func genCallMsgTo(name string, req term.Term) dist.Message {
	mref := term.Ref{Node: eng, Creation: 7, ID: []uint32{9, 9, 9}}
	tag := term.List{Elems: []term.Term{term.Atom("alias")}, Tail: mref}
	return dist.Message{
		Control: &dist.RegSend{From: engPid, Unused: term.Atom(""), ToName: term.Atom(name)},
		Payload: term.Tuple{term.Atom("$gen_call"), term.Tuple{engPid, tag}, req},
	}
}

func TestRegSend(t *testing.T) {
	s := newSession(t, Enforce)
	if d := s.Evaluate(genCallMsgTo("net_kernel", term.Tuple{term.Atom("is_auth"), eng})); d.Verdict != Allow {
		t.Fatalf("is_auth: %s %s", d.Verdict, d.Reason)
	}
	d := s.Evaluate(genCallMsgTo("net_kernel", term.Tuple{term.Atom("disconnect"), prod}))
	if d.Verdict != Deny || d.Answer.Kind != AnswerDown {
		t.Fatalf("disconnect: %s %+v", d.Verdict, d.Answer)
	}
	d = s.Evaluate(genCallMsgTo("rex", term.Tuple{term.Atom("block_call"), term.Atom("os"), term.Atom("cmd"), term.MakeList(term.String("id")), engGL}))
	if d.Verdict != Deny || d.Answer.Kind != AnswerSend {
		t.Fatalf("rex block_call os:cmd: %s %+v", d.Verdict, d.Answer)
	}
	reply := d.Answer.Value.(term.Tuple)
	if !term.IsTagged(reply[1], "badrpc", 2) {
		t.Fatalf("rex reply = %s", term.Format(reply, 200))
	}
	d = s.Evaluate(genCallMsgTo("rex", term.Tuple{term.Atom("call"), term.Atom("erlang"), term.Atom("node"), term.Nil{}, engGL}))
	if d.Verdict != Allow {
		t.Fatalf("rex call erlang:node: %s %s", d.Verdict, d.Reason)
	}
	d = s.Evaluate(dist.Message{Control: &dist.RegSend{From: engPid, ToName: "init"}, Payload: term.Tuple{term.Atom("stop"), term.Atom("stop")}})
	if d.Verdict != Deny {
		t.Fatalf("init stop: %s", d.Verdict)
	}
}

func TestForgedSenderIsFatal(t *testing.T) {
	s := newSession(t, Audit)
	d := s.Evaluate(dist.Message{Control: &dist.RegSend{From: prodPid, ToName: "beamgate_state"}, Payload: term.Atom("x")})
	if d.Verdict != Deny || !d.Fatal || d.Rule != "identity" {
		t.Fatalf("forged: %+v", d)
	}
	other := term.Pid{Node: eng, ID: 1, Creation: 8} // right node, wrong creation
	d = s.Evaluate(dist.Message{Control: &dist.Exit2{From: other, To: prodPid, Reason: term.Atom("kill")}})
	if !d.Fatal {
		t.Fatalf("wrong creation accepted: %+v", d)
	}
}

func TestSessionTracksSpawnedCollectors(t *testing.T) {
	s := newSession(t, Enforce)
	collector := term.Pid{Node: prod, ID: 500, Creation: 3}
	kill := dist.Message{Control: &dist.SendSender{From: engPid, To: collector}, Payload: term.Atom("exit")}
	if d := s.Evaluate(kill); d.Verdict != Deny {
		t.Fatalf("send to a foreign pid: %s", d.Verdict)
	}
	if d := s.Evaluate(spawn("observer_backend", "fetch_stats", term.MakeList(term.Atom("link")), engPid, term.Int(1000))); d.Verdict != Allow {
		t.Fatalf("fetch_stats: %s %s", d.Verdict, d.Reason)
	}
	s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Flags: 1, Result: collector}, nil)
	if d := s.Evaluate(kill); d.Verdict != Allow || d.Rule != "session.own" {
		t.Fatalf("send to own collector: %s %s", d.Verdict, d.Reason)
	}
	if d := s.Evaluate(dist.Message{Control: &dist.Exit{From: engPid, To: collector, Reason: term.Atom("shutdown")}}); d.Verdict != Allow {
		t.Fatalf("link exit to own collector: %s", d.Verdict)
	}
	if d := s.Evaluate(dist.Message{Control: &dist.PayloadExit2{From: engPid, To: prodPid}, Payload: term.Atom("kill")}); d.Verdict != Deny {
		t.Fatalf("kill a production process: %s", d.Verdict)
	}
}

func TestAtomBudget(t *testing.T) {
	s := newSession(t, Enforce)
	budget := s.prof.AtomBudget
	for i := range budget {
		d := s.Evaluate(erpcCall("erlang", "whereis", term.Atom("fresh_"+string(rune('a'+i%26))+strings.Repeat("x", i))))
		if d.Verdict != Allow {
			t.Fatalf("atom %d refused early: %s", i, d.Reason)
		}
	}
	d := s.Evaluate(erpcCall("erlang", "whereis", term.Atom("one_too_many")))
	if d.Verdict != Deny || d.Rule != "atom-budget" || d.Answer.Kind != AnswerErpcExit {
		t.Fatalf("over budget: %+v", d)
	}
	s.Known().Add("one_too_many")
	if d := s.Evaluate(erpcCall("erlang", "whereis", term.Atom("one_too_many"))); d.Verdict != Allow {
		t.Fatalf("atom production sent was refused: %s", d.Reason)
	}
}

func TestProfileErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"name: x\ncalls:\n  - mfa: [erlang:node/0]\n":                         "rule: missing",
		"name: x\ncalls:\n  - rule: r\n    mfa: [erlang-node]\n":              "not module:function/arity",
		"name: x\ncalls:\n  - rule: r\n    mfa: [a:b/1]\n    args: [bogus]\n": "args[0]",
		"name: x\ncals: []\n": "cals",
	}
	for body, want := range cases {
		path := dir + "/p.yaml"
		if err := writeFile(path, body); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%q) error = %v, want it to mention %q", body, err, want)
		}
	}
	if _, err := Load("nosuch"); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Errorf("unknown builtin error = %v", err)
	}
}

func TestExtendsReadonly(t *testing.T) {
	path := t.TempDir() + "/p.yaml"
	if err := writeFile(path, "name: mailbox-viewer\nextends: readonly\ncalls:\n  - rule: mailbox\n    mfa: [erlang:process_info/2]\n    args: [pid, any]\n"); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSession(SessionConfig{Profile: p, Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3})
	if d := s.Evaluate(erpcCall("erlang", "process_info", prodPid, term.Atom("messages"))); d.Verdict != Allow || d.Rule != "mailbox" {
		t.Fatalf("extended profile: %s %s", d.Verdict, d.Rule)
	}
	if d := s.Evaluate(erpcCall("erlang", "get_cookie")); d.Verdict != Deny {
		t.Fatalf("get_cookie through an extended profile: %s", d.Verdict)
	}
}

func BenchmarkEvaluateErpc(b *testing.B) {
	s := newSession(b, Enforce)
	frame, err := dist.AppendMessage(nil, erpcCall("erlang", "process_info", prodPid, term.Atom("memory")))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m, err := dist.DecodeFrame(frame, nil)
		if err != nil {
			b.Fatal(err)
		}
		if d := s.Evaluate(m); d.Verdict != Allow {
			b.Fatal(d.Reason)
		}
	}
}

func BenchmarkPolicyOnly(b *testing.B) {
	s := newSession(b, Enforce)
	m := erpcCall("erlang", "process_info", prodPid, term.Atom("memory"))
	b.ReportAllocs()
	for b.Loop() {
		if d := s.Evaluate(m); d.Verdict != Allow {
			b.Fatal(d.Reason)
		}
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o600) }
