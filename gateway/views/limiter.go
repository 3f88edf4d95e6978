package views

import "sync"

// Limiter allows one running view per user per node, so that one
// engineer cannot stack views (or watches) on a production node.
type Limiter struct {
	mu      sync.Mutex
	running map[limiterKey]struct{}
}

type limiterKey struct{ user, node string }

// NewLimiter returns an empty Limiter.
func NewLimiter() *Limiter { return &Limiter{running: map[limiterKey]struct{}{}} }

// Acquire claims the user's view slot on node. It reports false when the
// user already runs a view there; otherwise release frees the slot (it
// may be called more than once).
func (l *Limiter) Acquire(user, node string) (release func(), ok bool) {
	k := limiterKey{user, node}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, busy := l.running[k]; busy {
		return func() {}, false
	}
	l.running[k] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.running, k)
			l.mu.Unlock()
		})
	}, true
}
