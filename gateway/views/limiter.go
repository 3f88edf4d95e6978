package views

import "sync"

// DefaultViewsPerNode is how many views one user may run at once on one
// node when NewLimiter is given no limit.
const DefaultViewsPerNode = 4

// Limiter bounds the views one user runs at once on one node, so that one
// engineer cannot stack views (or watches) on a production node. Each
// view's own work is bounded as well (MaxInFlight, MaxSampled).
type Limiter struct {
	max     int
	mu      sync.Mutex
	running map[limiterKey]int
}

type limiterKey struct{ user, node string }

// NewLimiter returns a Limiter allowing perNode views per user per node
// (DefaultViewsPerNode when perNode <= 0).
func NewLimiter(perNode int) *Limiter {
	if perNode <= 0 {
		perNode = DefaultViewsPerNode
	}
	return &Limiter{max: perNode, running: map[limiterKey]int{}}
}

// Max is the views a user may run at once on one node.
func (l *Limiter) Max() int { return l.max }

// Acquire claims one of the user's view slots on node. It reports false
// when the user already runs Max views there; otherwise release frees the
// slot (it may be called more than once).
func (l *Limiter) Acquire(user, node string) (release func(), ok bool) {
	k := limiterKey{user, node}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[k] >= l.max {
		return func() {}, false
	}
	l.running[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.running[k]--; l.running[k] <= 0 {
				delete(l.running, k)
			}
		})
	}, true
}
