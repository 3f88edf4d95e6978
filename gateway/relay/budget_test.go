package relay

import (
	"context"
	"errors"
	"testing"
)

// TestBufferBudgetCutsTheLargest: once the sessions together hold more
// than the budget, the ones holding the most are ended first, with a
// reason, and what they held is released.
func TestBufferBudgetCutsTheLargest(t *testing.T) {
	r := &Relay{limits: Limits{BufferBudget: 1000, MaxBuffered: 10000}.withDefaults(), sessions: map[*session]struct{}{}}
	mk := func() (*session, context.Context) {
		ctx, cancel := context.WithCancelCause(context.Background())
		s := &session{r: r, cancel: cancel}
		s.out.init(r.limits.MaxBuffered)
		s.out.total, s.out.limit, s.out.over = &r.buffered, r.limits.BufferBudget, r.overBudget
		r.sessions[s] = struct{}{}
		return s, ctx
	}
	small, smallCtx := mk()
	big, bigCtx := mk()
	mid, midCtx := mk()
	push := func(s *session, n int) {
		if err := s.out.push(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	push(small, 100)
	push(mid, 300)
	push(big, 500) // 900: under the budget
	if bigCtx.Err() != nil || r.Buffered() != 900 {
		t.Fatalf("cut under the budget; buffered %d", r.Buffered())
	}
	push(mid, 150) // 1050: over; big (500, mid holds 450) goes, 550 left
	var ee *EndError
	if !errors.As(context.Cause(bigCtx), &ee) || smallCtx.Err() != nil || midCtx.Err() != nil {
		t.Fatalf("big: %v; small %v; mid %v", context.Cause(bigCtx), smallCtx.Err(), midCtx.Err())
	}
	big.out.close()
	if r.Buffered() != 550 {
		t.Errorf("after big's queue closed: %d held", r.Buffered())
	}
	// The writer taking and writing releases bytes too.
	mid.out.take()
	mid.out.written()
	if r.Buffered() != 100 {
		t.Errorf("after mid's frames were written: %d held", r.Buffered())
	}
}
