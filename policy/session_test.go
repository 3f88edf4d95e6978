package policy

import (
	"strings"
	"testing"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

// withLimits returns a copy of the readonly profile with other limits. The
// rule sets are shared, which is fine: profiles are immutable.
func withLimits(t testing.TB, atomBudget, maxMonitors int) *Profile {
	p := *mustLoad(t, "readonly")
	p.AtomBudget, p.MaxMonitors = atomBudget, maxMonitors
	return &p
}

func ref(ids ...uint32) term.Ref { return term.Ref{Node: eng, Creation: 7, ID: ids} }

func prodProc(id uint32) term.Pid { return term.Pid{Node: prod, ID: id, Creation: 3} }

// expect evaluates m and fails unless the verdict and rule are the given.
func expect(t *testing.T, s *Session, m dist.Message, v Verdict, rule string) Decision {
	t.Helper()
	d := s.Evaluate(m)
	if d.Verdict != v || d.Rule != rule {
		t.Fatalf("Evaluate(%v) = %s by %q (%s), want %s by %q", m, d.Verdict, d.Rule, d.Reason, v, rule)
	}
	return d
}

func sendTo(p term.Pid) dist.Message {
	return withPayload(&dist.SendSender{From: engPid, To: p}, term.Atom("exit"))
}

func exit2(p term.Pid) dist.Message {
	return withPayload(&dist.PayloadExit2{From: engPid, To: p}, term.Atom("kill"))
}

func linkExit(p term.Pid) dist.Message {
	return withPayload(&dist.PayloadExit{From: engPid, To: p}, term.Atom("shutdown"))
}

func TestSessionOwnsWhatItSpawns(t *testing.T) {
	s := newSession(t, Enforce)
	child := prodProc(700)
	expect(t, s, sendTo(child), Deny, "send")

	// spawn without link: the child is the session's own, but not linked.
	expect(t, s, spawn("observer_backend", "procs_info", term.Nil{}, engPid), Allow, "observer.collectors")
	s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Flags: 0, Result: child}, nil)
	expect(t, s, sendTo(child), Allow, "session.own")
	expect(t, s, exit2(child), Allow, "session.own")
	expect(t, s, linkExit(child), Allow, "link.exit")
	if len(s.pending) != 0 {
		t.Fatalf("a settled spawn stays pending: %v", s.pending)
	}

	// The same pid on another incarnation of production is not the child.
	other := child
	other.Creation++
	expect(t, s, sendTo(other), Deny, "send")

	// When the child exits, it is forgotten.
	s.Observe(&dist.PayloadExit{From: child, To: engPid}, nil)
	expect(t, s, sendTo(child), Deny, "send")
}

func TestSessionSpawnReplies(t *testing.T) {
	s := newSession(t, Enforce)
	child := prodProc(701)

	// A reply to no request of the session's grants nothing.
	s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Result: child}, nil)
	s.Observe(&dist.SpawnReply{ReqID: term.Atom("not_a_ref"), To: engPid, Result: child}, nil)
	expect(t, s, sendTo(child), Deny, "send")

	// A failed spawn settles the request.
	expect(t, s, spawn("observer_backend", "procs_info", term.MakeList(term.Atom("link")), engPid), Allow, "observer.collectors")
	s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Result: term.Atom("badopt")}, nil)
	if len(s.pending) != 0 {
		t.Fatalf("a failed spawn stays pending: %v", s.pending)
	}

	// SPAWN_REPLY_TT counts too, and a [link] spawn links the child even
	// when production's reply flags do not say so.
	expect(t, s, spawn("observer_backend", "procs_info", term.MakeList(term.Atom("link")), engPid), Allow, "observer.collectors")
	s.Observe(&dist.SpawnReplyTT{SpawnReply: dist.SpawnReply{ReqID: reqRef, To: engPid, Result: child}, Token: term.Atom("tok")}, nil)
	expect(t, s, sendTo(child), Allow, "session.own")
	if !s.has(s.linked, child) {
		t.Fatalf("a [link] spawn's child is not linked")
	}
	// Production-side pids only: a reply naming an engineer pid owns nothing.
	expect(t, s, spawn("observer_backend", "procs_info", term.Nil{}, engPid), Allow, "observer.collectors")
	s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Result: engGL}, nil)
	if len(s.own) != 1 {
		t.Fatalf("own = %v", s.own)
	}
}

func TestSessionTracksProductionLinks(t *testing.T) {
	s := newSession(t, Enforce)
	p := prodProc(710)
	expect(t, s, linkExit(p), Deny, "link.exit")
	expect(t, s, ctl(&dist.UnlinkID{ID: 1, From: engPid, To: p}), Deny, "unlink")

	// Production linked itself to the engineer (get_table, appmon_info):
	// link signals may answer it, but it is still not the session's own.
	s.Observe(&dist.Link{From: p, To: engPid}, nil)
	expect(t, s, linkExit(p), Allow, "link.exit")
	expect(t, s, ctl(&dist.UnlinkIDAck{ID: 1, From: engPid, To: p}), Allow, "unlink")
	expect(t, s, exit2(p), Deny, "process.signal")
	expect(t, s, sendTo(p), Deny, "send")
	expect(t, s, ctl(&dist.Link{From: engPid, To: p}), Deny, "link")

	// It exits: forgotten.
	s.Observe(&dist.Exit{From: p, To: engPid, Reason: term.Atom("normal")}, nil)
	expect(t, s, linkExit(p), Deny, "link.exit")

	// A link from another node is not production's.
	s.Observe(&dist.Link{From: engGL, To: engPid}, nil)
	if len(s.linked) != 0 {
		t.Fatalf("linked = %v", s.linked)
	}
	s.Observe(&dist.Exit{From: engGL, To: engPid, Reason: term.Atom("normal")}, nil)
}

func TestSessionAuditedLinkIsTracked(t *testing.T) {
	s := newSession(t, Audit)
	p := prodProc(711)
	expect(t, s, ctl(&dist.Link{From: engPid, To: p}), AllowWrite, "link")
	// The forwarded link is the session's: its link signals pass.
	expect(t, s, linkExit(p), Allow, "link.exit")
	expect(t, s, ctl(&dist.UnlinkID{ID: 9, From: engPid, To: p}), Allow, "unlink")
	// A refused link is not.
	e := newSession(t, Enforce)
	expect(t, e, ctl(&dist.Link{From: engPid, To: p}), Deny, "link")
	expect(t, e, linkExit(p), Deny, "link.exit")
}

func TestSessionIORequests(t *testing.T) {
	s := newSession(t, Enforce)
	p := prodProc(720)
	reply := withPayload(&dist.Send{To: p}, term.Tuple{term.Atom("io_reply"), term.Atom("ra"), term.Atom("ok")})
	expect(t, s, reply, Deny, "send")

	ignored := [][]byte{
		nil,
		marshal(t, term.Tuple{term.Atom("hello"), p}),
		marshal(t, term.Tuple{term.Atom("io_request"), term.Atom("not_a_pid"), term.Atom("ra"), term.Atom("getopts")}),
		marshal(t, term.Tuple{term.Atom("io_request"), p, term.Atom("ra")}),                            // a 3-tuple
		marshal(t, term.Tuple{term.Atom("io_request"), p, term.Atom("ra"), term.Atom("getopts")})[:20], // cut short
	}
	for _, b := range ignored {
		s.Observe(&dist.Send{To: engGL}, b)
	}
	expect(t, s, reply, Deny, "send")

	// Every atom encoding of io_request is recognised.
	heads := []func([]byte) []byte{
		func(b []byte) []byte { return b }, // SMALL_ATOM_UTF8
		func(b []byte) []byte { // ATOM_UTF8
			return append(append([]byte{131, 104, 4, 118, 0, 10}, "io_request"...), b[15:]...)
		},
		func(b []byte) []byte { // SMALL_ATOM (latin-1)
			return append(append([]byte{131, 104, 4, 115, 10}, "io_request"...), b[15:]...)
		},
		func(b []byte) []byte { // ATOM (latin-1)
			return append(append([]byte{131, 104, 4, 100, 0, 10}, "io_request"...), b[15:]...)
		},
	}
	for i, h := range heads {
		q := prodProc(730 + uint32(i))
		s.Observe(&dist.SendSender{From: q, To: engGL}, h(marshal(t, term.Tuple{term.Atom("io_request"), q, term.Atom("ra"), term.Atom("getopts")})))
		expect(t, s, withPayload(&dist.Send{To: q}, term.Tuple{term.Atom("io_reply"), term.Atom("ra"), term.Nil{}}), Allow, "io.reply")
		// Only the io_reply: any other message is still a state change.
		expect(t, s, withPayload(&dist.Send{To: q}, term.Atom("hello")), Deny, "send")
	}
}

func TestSessionGrantsResultPids(t *testing.T) {
	s := newSession(t, Enforce)
	child, granted, stranger := prodProc(740), prodProc(741), prodProc(742)
	expect(t, s, erpcCall("appmon_info", "start_link2", engPid, engPid, term.Nil{}), Allow, "observer.applications")
	s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Flags: 2, Result: child}, nil)
	result := marshal(t, term.Tuple{resRef, term.Atom("return"), term.Tuple{term.Atom("ok"), granted}})
	s.Observe(&dist.PayloadMonitorPExit{From: child, To: engPid, Ref: reqRef}, result)
	expect(t, s, sendTo(granted), Allow, "session.own")
	expect(t, s, linkExit(granted), Allow, "link.exit")
	expect(t, s, sendTo(stranger), Deny, "send")
	// The erpc worker exited with its result.
	expect(t, s, sendTo(child), Deny, "send")
	if len(s.pending) != 0 {
		t.Fatalf("pending = %v", s.pending)
	}

	// An ordinary call's result grants nothing.
	expect(t, s, erpcCall("erlang", "whereis", term.Atom("rex")), Allow, "system.stats")
	s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Flags: 2, Result: child}, nil)
	s.Observe(&dist.PayloadMonitorPExit{From: child, To: engPid, Ref: reqRef}, marshal(t, term.Tuple{resRef, term.Atom("return"), stranger}))
	expect(t, s, sendTo(stranger), Deny, "send")

	// A granted call whose result does not decode grants nothing either.
	expect(t, s, erpcCall("appmon_info", "start_link2", engPid, engPid, term.Nil{}), Allow, "observer.applications")
	s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Flags: 2, Result: child}, nil)
	s.Observe(&dist.PayloadMonitorPExit{From: child, To: engPid, Ref: reqRef}, []byte{131, 255})
	expect(t, s, sendTo(stranger), Deny, "send")
	if len(s.pending) != 0 {
		t.Fatalf("pending = %v", s.pending)
	}
}

// The grant of a call is for its own result: a refused call, or another
// call reusing its request id, must not turn production's pids into the
// session's own (which would let it kill or message any process).
func TestGrantIsForTheForwardedCallOnly(t *testing.T) {
	processes := func(s *Session, reqID term.Ref) []term.Pid {
		t.Helper()
		call := erpcCall("erlang", "processes")
		call.Control.(*dist.SpawnRequest).ReqID = reqID
		d := s.Evaluate(call)
		if !d.Verdict.Forwarded() {
			return nil
		}
		all := []term.Term{prodPid, prodProc(900)}
		child := prodProc(901)
		s.Observe(&dist.SpawnReply{ReqID: reqID, To: engPid, Flags: 2, Result: child}, nil)
		s.Observe(&dist.PayloadMonitorPExit{From: child, To: engPid, Ref: reqID}, marshal(t, term.Tuple{resRef, term.Atom("return"), term.MakeList(all...)}))
		return []term.Pid{prodPid, prodProc(900)}
	}

	t.Run("refused by the atom budget", func(t *testing.T) {
		s := NewSession(SessionConfig{Profile: withLimits(t, 0, 10), Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3})
		grant := erpcCall("appmon_info", "start_link2", engPid, engPid, term.Atom("a_new_atom"))
		expect(t, s, grant, Deny, "atom-budget")
		processes(s, reqRef)
		expect(t, s, exit2(prodPid), Deny, "process.signal")
		if len(s.pending) != 0 {
			t.Fatalf("a refused call left pending %v", s.pending)
		}
	})

	t.Run("request id reused", func(t *testing.T) {
		s := newSession(t, Enforce)
		expect(t, s, erpcCall("appmon_info", "start_link2", engPid, engPid, term.Nil{}), Allow, "observer.applications")
		call := erpcCall("erlang", "processes")
		d := s.Evaluate(call)
		if d.Verdict != Deny || d.Answer.Kind == AnswerNone {
			t.Fatalf("a spawn request reusing a pending request id: %s by %s", d.Verdict, d.Rule)
		}
		processes(s, reqRef)
		expect(t, s, exit2(prodPid), Deny, "process.signal")
		// Once production answered the first request its id is free.
		s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Result: term.Atom("badarg")}, nil)
		expect(t, s, erpcCall("erlang", "processes"), Allow, "system.stats")
	})

	t.Run("granted call reusing a pending id", func(t *testing.T) {
		s := newSession(t, Enforce)
		expect(t, s, erpcCall("erlang", "processes"), Allow, "system.stats")
		expect(t, s, erpcCall("appmon_info", "start_link2", engPid, engPid, term.Nil{}), Deny, "malformed")
		// Calls that grant nothing may share an id: nothing to confuse.
		expect(t, s, erpcCall("erlang", "node"), Allow, "net.identity")
	})

	t.Run("request id reused once spawned", func(t *testing.T) {
		// processes() is spawned; before its result comes, the id is
		// free again and a granted call reuses it.
		s := newSession(t, Enforce)
		worker, appmon := prodProc(910), prodProc(911)
		expect(t, s, erpcCall("erlang", "processes"), Allow, "system.stats")
		s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Flags: 2, Result: worker}, nil)
		expect(t, s, erpcCall("appmon_info", "start_link2", engPid, engPid, term.Nil{}), Allow, "observer.applications")
		s.Observe(&dist.SpawnReply{ReqID: reqRef, To: engPid, Flags: 2, Result: appmon}, nil)
		s.Observe(&dist.PayloadMonitorPExit{From: worker, To: engPid, Ref: reqRef}, marshal(t, term.Tuple{resRef, term.Atom("return"), term.MakeList(prodPid)}))
		expect(t, s, exit2(prodPid), Deny, "process.signal")
		// Nor does a monitor the engineer set with the same reference on
		// some production process grant what that process exits with.
		s.Observe(&dist.PayloadMonitorPExit{From: prodProc(912), To: engPid, Ref: reqRef}, marshal(t, term.Tuple{term.Atom("shutdown"), prodPid}))
		expect(t, s, exit2(prodPid), Deny, "process.signal")
		// The granted call's own result still grants.
		granted := prodProc(913)
		s.Observe(&dist.PayloadMonitorPExit{From: appmon, To: engPid, Ref: reqRef}, marshal(t, term.Tuple{resRef, term.Atom("return"), term.Tuple{term.Atom("ok"), granted}}))
		expect(t, s, exit2(granted), Allow, "session.own")
		expect(t, s, exit2(prodPid), Deny, "process.signal")
	})
}

func TestMonitors(t *testing.T) {
	s := NewSession(SessionConfig{Profile: withLimits(t, 64, 2), Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3})
	mon := func(r term.Ref) dist.Message { return ctl(&dist.MonitorP{From: engPid, To: prodPid, Ref: r}) }
	demon := func(r term.Ref) dist.Message { return ctl(&dist.DemonitorP{From: engPid, To: prodPid, Ref: r}) }
	expect(t, s, mon(ref(1)), Allow, "monitor")
	expect(t, s, mon(ref(2)), Allow, "monitor")
	d := expect(t, s, mon(ref(3)), Deny, "monitor-limit")
	if !strings.Contains(d.Reason, "2 monitors") {
		t.Fatalf("reason = %q", d.Reason)
	}
	expect(t, s, demon(ref(1)), Allow, "monitor")
	expect(t, s, mon(ref(3)), Allow, "monitor")
	// A DOWN from production frees the slot, pid or name, payload or not.
	s.Observe(&dist.MonitorPExit{From: prodPid, To: engPid, Ref: ref(2), Reason: term.Atom("noproc")}, nil)
	expect(t, s, mon(ref(4)), Allow, "monitor")
	s.Observe(&dist.PayloadMonitorPExit{From: term.Atom("rex"), To: engPid, Ref: ref(4)}, marshal(t, term.Atom("normal")))
	expect(t, s, mon(ref(5)), Allow, "monitor")
	expect(t, s, mon(ref(6)), Deny, "monitor-limit")
}

// References are production's to tell apart by node and creation too: two
// references with the same numbers are two monitors there.
func TestMonitorLimitCountsDistinctReferences(t *testing.T) {
	s := NewSession(SessionConfig{Profile: withLimits(t, 64, 2), Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3})
	r := func(cre uint32) term.Ref { return term.Ref{Node: eng, Creation: cre, ID: []uint32{1, 2, 3}} }
	expect(t, s, ctl(&dist.MonitorP{From: engPid, To: prodPid, Ref: r(7)}), Allow, "monitor")
	expect(t, s, ctl(&dist.MonitorP{From: engPid, To: prodPid, Ref: r(8)}), Allow, "monitor")
	expect(t, s, ctl(&dist.MonitorP{From: engPid, To: prodPid, Ref: r(9)}), Deny, "monitor-limit")
	// Removing a monitor production does not have frees nothing.
	expect(t, s, ctl(&dist.DemonitorP{From: engPid, To: prodPid, Ref: r(10)}), Allow, "monitor")
	expect(t, s, ctl(&dist.MonitorP{From: engPid, To: prodPid, Ref: r(9)}), Deny, "monitor-limit")
	other := term.Ref{Node: "other@host", Creation: 7, ID: []uint32{1, 2, 3}}
	s.Known().Add("other@host")
	expect(t, s, ctl(&dist.DemonitorP{From: engPid, To: prodPid, Ref: other}), Allow, "monitor")
	expect(t, s, ctl(&dist.MonitorP{From: engPid, To: prodPid, Ref: r(9)}), Deny, "monitor-limit")
}

func TestRefusedGenCallCleansUpItsMonitor(t *testing.T) {
	s := newSession(t, Enforce)
	mref := term.Ref{Node: eng, Creation: 7, ID: []uint32{9, 9, 9}}
	expect(t, s, ctl(&dist.MonitorP{From: engPid, To: term.Atom("net_kernel"), Ref: mref}), Allow, "monitor")
	d := expect(t, s, genCallMsgTo("net_kernel", term.Tuple{term.Atom("disconnect"), prod}), Deny, "net_kernel")
	if d.Answer.Kind != AnswerDown || d.Cleanup == nil {
		t.Fatalf("answer %+v, cleanup %v", d.Answer, d.Cleanup)
	}
	if want := (dist.DemonitorP{From: engPid, To: term.Atom("net_kernel"), Ref: mref}); !ctl(d.Cleanup).Equal(ctl(&want)) {
		t.Fatalf("cleanup = %v", d.Cleanup)
	}
	if len(s.monitors) != 0 {
		t.Fatalf("monitors = %v", s.monitors)
	}
	// The monitor is gone: a second refusal has nothing to clean up.
	if d := s.Evaluate(genCallMsgTo("net_kernel", term.Tuple{term.Atom("disconnect"), prod})); d.Cleanup != nil {
		t.Fatalf("second cleanup %v", d.Cleanup)
	}
	// A tag whose reference cannot be a monitor's has none to clean up.
	long := genCallMsgTo("net_kernel", term.Tuple{term.Atom("disconnect"), prod})
	long.Payload.(term.Tuple)[1] = term.Tuple{engPid, term.Ref{Node: eng, Creation: 7, ID: []uint32{1, 2, 3, 4, 5, 6}}}
	if d := s.Evaluate(long); d.Answer.Kind != AnswerDown || d.Cleanup != nil {
		t.Fatalf("six-word reference: %+v", d)
	}
	// Nor does a refusal whose caller is not the monitor's owner.
	other := term.Pid{Node: eng, ID: 91, Creation: 7}
	expect(t, s, ctl(&dist.MonitorP{From: other, To: term.Atom("net_kernel"), Ref: mref}), Allow, "monitor")
	if d := s.Evaluate(genCallMsgTo("net_kernel", term.Tuple{term.Atom("disconnect"), prod})); d.Cleanup != nil || len(s.monitors) != 1 {
		t.Fatalf("cleanup of another process's monitor: %v", d.Cleanup)
	}
}

func TestAtomBudgetIsSpentOnlyByForwardedMessages(t *testing.T) {
	s := NewSession(SessionConfig{Profile: withLimits(t, 2, 10), Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3})
	// Refused messages spend nothing, whatever atoms they carry.
	for range 5 {
		expect(t, s, erpcCall("os", "cmd", term.Atom("fresh_one"), term.Atom("fresh_two"), term.Atom("fresh_three")), Deny, "os.and.files")
	}
	// Atoms are counted once per message and once per session.
	expect(t, s, erpcCall("erlang", "whereis", term.MakeList(term.Atom("fresh_one"), term.Atom("fresh_one"))), Allow, "system.stats")
	expect(t, s, erpcCall("erlang", "whereis", term.Atom("fresh_one")), Allow, "system.stats")
	// New node names in pids and references count too.
	d := expect(t, s, erpcCall("erlang", "whereis", term.MakeList(term.Pid{Node: "x@y"}, term.Ref{Node: "z@y", ID: []uint32{1}})), Deny, "atom-budget")
	if !strings.Contains(d.Reason, "2 atoms") || d.Answer.Kind != AnswerErpcExit {
		t.Fatalf("over budget: %+v", d)
	}
	expect(t, s, erpcCall("erlang", "whereis", term.Port{Node: "x@y"}), Allow, "system.stats")
	expect(t, s, erpcCall("erlang", "whereis", term.Atom("fresh_two")), Deny, "atom-budget")
	// Atoms the profile names, the protocol vocabulary, the two node
	// names and atoms production sent are free.
	expect(t, s, erpcCall("erlang", "whereis", term.MakeList(term.Atom("recon_alloc"), term.Atom("DOWN"), eng, prod)), Allow, "system.stats")
	s.Known().AddBytes([]byte("fresh_two"))
	s.Known().AddBytes([]byte("fresh_two"))
	expect(t, s, erpcCall("erlang", "whereis", term.Atom("fresh_two")), Allow, "system.stats")
}

func TestAtomSetBound(t *testing.T) {
	a := NewAtomSet(2)
	a.Add("one")
	a.Add("one")
	a.AddBytes([]byte("two"))
	a.Add("three")
	a.AddBytes([]byte("four"))
	if a.Len() != 2 || !a.Has("one") || !a.Has("two") || a.Has("three") || a.Has("four") {
		t.Fatalf("set holds %d atoms", a.Len())
	}
	// Sessions of one target share their set.
	shared := NewAtomSet(10)
	s1 := NewSession(SessionConfig{Profile: withLimits(t, 0, 1), Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3, Known: shared})
	s2 := NewSession(SessionConfig{Profile: withLimits(t, 0, 1), Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3, Known: shared})
	if s1.Known() != shared || s2.Known() != shared {
		t.Fatal("sessions do not use the shared set")
	}
	s1.Known().Add("from_production")
	expect(t, s2, erpcCall("erlang", "whereis", term.Atom("from_production")), Allow, "system.stats")
}

func TestScanFindsCodeAnywhere(t *testing.T) {
	fun := term.Fun{Module: "erl_eval", Pid: engPid, OldIndex: term.Int(0), OldUniq: term.Int(0)}
	msgs := []dist.Message{
		withPayload(&dist.RegSend{From: engPid, Unused: fun, ToName: "rex"}, term.Atom("x")),
		ctl(&dist.MonitorP{From: engPid, To: fun, Ref: reqRef}),
		ctl(&dist.DemonitorP{From: engPid, To: fun, Ref: reqRef}),
		withPayload(&dist.SendSender{From: engPid, To: prodPid}, term.MakeList(term.Int(1), term.Tuple{fun})),
		withPayload(&dist.Send{To: prodPid}, term.Map{{Key: term.Atom("k"), Value: fun}}),
		withPayload(&dist.SpawnRequest{ReqID: term.Tuple{fun}, From: engPid, GroupLeader: engGL, Module: "erlang", Function: "node", Opts: term.Nil{}}, term.Nil{}),
	}
	for _, m := range msgs {
		d := auditSession(t).Evaluate(m)
		if d.Verdict != Deny || d.Rule != "no-code" {
			t.Errorf("%v: %s by %s", m, d.Verdict, d.Rule)
		}
	}
	d := auditSession(t).Evaluate(msgs[len(msgs)-1])
	if d.What != "erlang:node/0" || d.Answer.Kind != AnswerSpawnError {
		t.Errorf("spawn request with code: %+v", d)
	}
}

func auditSession(t *testing.T) *Session { return newSession(t, Audit) }

func TestNewSessionDefaultsToEnforce(t *testing.T) {
	s := NewSession(SessionConfig{Profile: mustLoad(t, "readonly"), Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3})
	expect(t, s, erpcCall("lists", "seq", term.Int(1), term.Int(2)), Deny, "default")
}
