package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"beamgate/audit"
)

// nopSink is an audit sink that accepts everything.
type nopSink struct{}

func (nopSink) Append(context.Context, *audit.Record) error { return nil }
func (nopSink) Failed() <-chan struct{}                     { return nil }
func (nopSink) Err() error                                  { return nil }

// TestRecentBounds: Recent keeps refusals and the last steps per user,
// newest first and bounded, skips allowed messages and the stand-ins'
// traffic, and forgets the least recently seen user first.
func TestRecentBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRecent(nopSink{}, func() time.Time { return now })
	ctx := context.Background()
	for i := range recentPerUser + 5 {
		r.Append(ctx, &audit.Record{User: "alice", Event: audit.EventMessage, Decision: audit.DecisionDeny, Rule: fmt.Sprint(i)})
	}
	r.Append(ctx, &audit.Record{User: "alice", Event: audit.EventMessage, Decision: audit.DecisionAllow})
	r.Append(ctx, &audit.Record{User: "alice", Event: audit.EventMessage, Decision: audit.DecisionDeny, Rule: "remote-shell.stand_in"})
	r.Append(ctx, &audit.Record{User: "alice", Event: audit.EventEpmd, Op: "ALIVE2_REQ", Decision: audit.DecisionAllow, Detail: map[string]string{"alive": "a"}})
	r.Append(ctx, &audit.Record{User: "alice", Event: audit.EventEpmd, Op: "PORT_PLEASE2_REQ", Dest: "beamgate:14369", Decision: audit.DecisionAllow})
	r.Append(ctx, &audit.Record{User: "alice", Event: audit.EventSessionStart, Target: "p@h"})
	v := r.Of("alice")
	if len(v.Refusals) != recentPerUser || v.Refusals[0].Rule != fmt.Sprint(recentPerUser+4) || v.Refusals[recentPerUser-1].Rule != "5" {
		t.Fatalf("refusals: %d, newest %q", len(v.Refusals), v.Refusals[0].Rule)
	}
	if v.Home == nil || v.Home.Detail["alive"] != "a" || v.Lookup != nil || v.Session == nil || v.Session.Target != "p@h" {
		t.Errorf("steps: home %+v lookup %+v session %+v", v.Home, v.Lookup, v.Session)
	}
	v.Home.Detail["alive"] = "changed"
	if r.Of("alice").Home.Detail["alive"] != "a" {
		t.Error("Of returned shared state")
	}
	for i := range recentUsers {
		now = now.Add(time.Second)
		r.Append(ctx, &audit.Record{User: fmt.Sprint("u", i), Decision: audit.DecisionDeny})
	}
	if len(r.users) != recentUsers || len(r.Of("alice").Refusals) != 0 {
		t.Errorf("%d users kept; alice (seen first) still there: %v", len(r.users), len(r.Of("alice").Refusals) != 0)
	}
}
