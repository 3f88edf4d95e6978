package policy

import (
	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestShellBookRules: the break-glass rules without I/O.
func TestShellBookRules(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	b := &ShellBook{}
	if _, err := NewShellRequest("alice", "n@h", "c", "", 0, 0, 1, now); err == nil {
		t.Error("a request without a reason")
	}
	if _, err := NewShellRequest("alice", "n@h", "c", "x", 5*time.Hour, 0, 1, now); err == nil || !strings.Contains(err.Error(), "longer than the 4h0m0s") {
		t.Errorf("over the default 4h cap: %v", err)
	}
	r, err := NewShellRequest("alice", "n@h", "c", "queue stuck", 0, time.Hour, 2, now)
	if err != nil || r.For != DefaultShellFor || !strings.HasPrefix(r.ID, "sh-") {
		t.Fatalf("NewShellRequest = %+v, %v", r, err)
	}
	if err := b.Add(r, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Approve(r.ID, "alice", true, now); !errors.Is(err, ErrShellSelfApprove) {
		t.Errorf("self-approval: %v", err)
	}
	if _, _, err := b.Approve(r.ID, "carol", false, now); !errors.Is(err, ErrShellNotApprover) {
		t.Errorf("a non-approver: %v", err)
	}
	if _, granted, err := b.Approve(r.ID, "bob", true, now); err != nil || granted {
		t.Errorf("first of two approvals: granted %v, %v", granted, err)
	}
	if _, _, err := b.Approve(r.ID, "bob", true, now); err == nil {
		t.Error("the same approver twice")
	}
	if b.Grant("alice", "n@h", now) != nil {
		t.Error("a grant with one of two approvals")
	}
	later := now.Add(time.Minute)
	if _, granted, err := b.Approve(r.ID, "dave", true, later); err != nil || !granted {
		t.Fatalf("second approval: granted %v, %v", granted, err)
	}
	if g := b.Grant("alice", "n@h", later); g == nil || !g.Expires.Equal(later.Add(DefaultShellFor)) {
		t.Fatalf("grant = %+v", g)
	}
	if b.Grant("alice", "other@h", later) != nil || b.Grant("bob", "n@h", later) != nil {
		t.Error("the grant covers another node or user")
	}
	// Expiry.
	if st := r.State(later.Add(DefaultShellFor)); st != ShellExpired {
		t.Errorf("after its time: %s", st)
	}
	if b.Grant("alice", "n@h", later.Add(DefaultShellFor)) != nil {
		t.Error("an expired grant is still active")
	}
	// Revocation by the requester or an approver; not by others.
	if _, err := b.Revoke(r.ID, "eve", false, later); err == nil {
		t.Error("revoked by someone who may not")
	}
	if _, err := b.Revoke(r.ID, "bob", true, later); err != nil || r.State(later) != ShellRevoked {
		t.Errorf("revoke: %v, %s", err, r.State(later))
	}
	// A pending request nobody approved expires; denial needs a reason.
	p, _ := NewShellRequest("alice", "n@h", "c", "again", 10*time.Minute, time.Hour, 1, now)
	b.Add(p, now)
	if _, err := b.Deny(p.ID, "bob", "", true, now); err == nil {
		t.Error("a denial without a reason")
	}
	if st := p.State(now.Add(11 * time.Minute)); st != ShellExpired {
		t.Errorf("an unapproved request after its time: %s", st)
	}
	// Offboarding cancels what is open.
	q, _ := NewShellRequest("alice", "n@h", "c", "third", 10*time.Minute, time.Hour, 1, now)
	b.Add(q, now)
	if got := b.CancelUser("alice", "ops", "left", now); len(got) != 2 || q.State(now) != ShellCancelled {
		t.Errorf("CancelUser = %d requests, %s", len(got), q.State(now))
	}
	// Ended requests are pruned after a week.
	b.Prune(now.Add(ShellKeepEnded + time.Hour))
	if len(b.Requests) != 0 {
		t.Errorf("%d requests left after pruning", len(b.Requests))
	}
}

// TestShellExpiriesNotedOnce: each expiry is handed out once.
func TestShellExpiriesNotedOnce(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	b := &ShellBook{}
	r, _ := NewShellRequest("alice", "n@h", "c", "x", 10*time.Minute, time.Hour, 1, now)
	b.Add(r, now)
	b.Approve(r.ID, "bob", true, now)
	if got := b.NoteExpiries(now.Add(5 * time.Minute)); len(got) != 0 {
		t.Errorf("an active grant noted as expired: %v", got)
	}
	if got := b.NoteExpiries(now.Add(11 * time.Minute)); len(got) != 1 || got[0].ID != r.ID {
		t.Errorf("the expired grant: %v", got)
	}
	if got := b.NoteExpiries(now.Add(12 * time.Minute)); len(got) != 0 {
		t.Errorf("an expiry noted twice: %v", got)
	}
}

// TestShellGrantOpensTheShellOnly: under a break-glass grant a group's
// shell start passes (with its result granted), the start-up reads pass,
// and the rest stays refused: a write, a secret, a send to a production
// process that never messaged the engineer.
func TestShellGrantOpensTheShellOnly(t *testing.T) {
	start := func() dist.Message {
		m := erpcCall("shell", "start")
		m.Control.(*dist.SpawnRequest).GroupLeader = engPid // the group, its own group leader
		return m
	}
	s := newSession(t, Enforce)
	if d := s.Evaluate(start()); d.Verdict != Deny || d.Rule != RemoteShellRule {
		t.Fatalf("without a grant: %v %s", d.Verdict, d.Rule)
	}
	s = newSession(t, Enforce)
	s.SetShellGrant("sh-1")
	if d := s.Evaluate(start()); d.Verdict != Allow || d.Rule != ShellRule || !d.grant {
		t.Errorf("the shell's start under a grant: %v %s grant=%v", d.Verdict, d.Rule, d.grant)
	}
	for _, tc := range []struct {
		name string
		msg  dist.Message
		want Verdict
		rule string
	}{
		{"slogan", erpcCall("application", "get_env", term.Atom("stdlib"), term.Atom("shell_slogan"), term.String("x")), Allow, ShellRule},
		{"other env", erpcCall("application", "get_env", term.Atom("kernel"), term.Atom("secret")), Deny, "secrets"},
		{"ets write", erpcCall("ets", "insert", term.Atom("t"), term.Tuple{term.Int(1)}), Deny, "ets.write"},
		{"cookie", erpcCall("erlang", "get_cookie"), Deny, "secrets"},
		{"send to a stranger", dist.Message{Control: &dist.Send{To: prodPid}, Payload: term.Atom("hi")}, Deny, "send"},
	} {
		s := newSession(t, Enforce) // each with its own request ids
		s.SetShellGrant("sh-1")
		if d := s.Evaluate(tc.msg); d.Verdict != tc.want || d.Rule != tc.rule {
			t.Errorf("%s under a grant: %v %s, want %v %s", tc.name, d.Verdict, d.Rule, tc.want, tc.rule)
		}
	}
}
