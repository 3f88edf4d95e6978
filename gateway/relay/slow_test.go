package relay

import (
	"context"
	"net"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/gateway/dist"
	"beamgate/gateway/dist/handshake"
	"beamgate/gateway/dist/term"
)

// An engineer that stops reading must not back up production: the relay
// keeps draining production into its buffer, and past the cap it ends the
// session and audits why.
func TestRelayCutsSlowEngineer(t *testing.T) {
	f := startFixture(t, fixtureOpts{noDirect: true, limits: Limits{MaxBuffered: 1 << 20}})
	conn, err := net.Dial("tcp", f.relayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const me = "slow@eng.beamgate.test"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := handshake.Initiate(ctx, conn, handshake.InitiatorConfig{Name: me, Creation: 5, Flags: handshake.ClientFlags, Cookie: engCookie, PeerName: prodName}); err != nil {
		t.Fatal(err)
	}
	self := term.Pid{Node: me, ID: 80, Creation: 5}
	var buf []byte
	for i := range 2000 {
		ref := term.Ref{Node: me, Creation: 5, ID: []uint32{uint32(i), 1, 2}}
		m := dist.Message{
			Control: &dist.SpawnRequest{ReqID: ref, From: self, GroupLeader: self, Module: "erpc", Function: "execute_call", Arity: 4, Opts: term.MakeList(term.Atom("monitor"))},
			Payload: term.MakeList(ref, term.Atom("code"), term.Atom("all_loaded"), term.Nil{}),
		}
		buf, err = dist.AppendMessageFrame(buf[:0], m)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(buf); err != nil {
			break // the relay cut us off
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cut := f.records(t, audit.Filter{Event: "session_cut"}); len(cut) > 0 {
			if cut[0].Rule != "engineer-too-slow" {
				t.Fatalf("cut by %q: %s", cut[0].Rule, cut[0].Reason)
			}
			t.Logf("cut: %s", cut[0].Reason)
			// Production is unaffected and still answers others.
			if got := f.prod.Eval(t, "length(nodes(connected))."); got != "0" {
				t.Logf("production still lists %s connections", got)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the relay never cut the engineer that stopped reading")
}
