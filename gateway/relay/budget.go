package relay

import (
	"cmp"
	"fmt"
	"slices"
)

// overBudget runs when a push takes the relay's held bytes past
// Limits.BufferBudget: it ends the sessions holding the most, largest
// first, until what the others hold is back under the budget. Each ended
// session's session_end record says why; its bytes are released when its
// queue closes.
func (r *Relay) overBudget() {
	limit := r.limits.BufferBudget
	r.mu.Lock()
	type holder struct {
		s    *session
		held int
	}
	var hs []holder
	for s := range r.sessions {
		if !s.budgetCut.Load() {
			if h := s.out.held(); h > 0 {
				hs = append(hs, holder{s, h})
			}
		}
	}
	r.mu.Unlock()
	slices.SortFunc(hs, func(a, b holder) int { return cmp.Compare(b.held, a.held) })
	projected := r.buffered.Load()
	for _, h := range hs {
		if projected <= limit {
			break
		}
		if !h.s.budgetCut.CompareAndSwap(false, true) {
			continue
		}
		h.s.cancel(&EndError{Reason: fmt.Sprintf("the gateway's buffer budget (%d bytes, limits.buffer_budget) was reached: this session held the most production output waiting for the engineer (%d bytes)", limit, h.held)})
		projected -= int64(h.held)
	}
}

// Buffered is what every session holds of production's output waiting
// for engineers, in bytes (for metrics).
func (r *Relay) Buffered() int64 { return r.buffered.Load() }
