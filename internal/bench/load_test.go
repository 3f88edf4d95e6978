package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"beamgate/gateway/dist/client"
	"beamgate/gateway/dist/term"

	gossh "golang.org/x/crypto/ssh"
)

const (
	sessionDialWait = 30 * time.Second // one session: SSH login, channel, dist handshake, first call
	dialParallel    = 8                // sessions being opened at once
	pollCallWait    = 10 * time.Second // one poll call
	maxPollSamples  = 1 << 20          // poll latencies kept
)

// loadSession is one engineer: its own SSH connection to beamgate with one
// direct-tcpip channel carrying a hidden-node distribution connection.
type loadSession struct {
	ssh  *gossh.Client
	dist *client.Conn
}

func (s *loadSession) close() {
	if s.dist != nil {
		s.dist.Close()
	}
	s.ssh.Close()
}

// openSession logs in as load, opens a channel to prismatic@prod-01's
// gateway port and connects hidden node name through it.
func openSession(g *beamgateProc, name, cookie string) (*loadSession, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sessionDialWait)
	defer cancel()
	sc, err := g.dialSSH()
	if err != nil {
		return nil, fmt.Errorf("ssh login: %w", err)
	}
	s := &loadSession{ssh: sc}
	nc, err := dialChannel(sc, prodHost, g.gatewayPort)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("direct-tcpip to %s:%d: %w", prodHost, g.gatewayPort, err)
	}
	if s.dist, err = client.DialConn(ctx, nc, client.Config{Node: name, Target: prodName, Cookie: cookie}); err != nil {
		s.close()
		return nil, err
	}
	if v, err := s.dist.Call(ctx, "erlang", "node", nil); err != nil || v != term.Atom(prodName) {
		s.close()
		return nil, fmt.Errorf("first call: %v, %v", v, err)
	}
	return s, nil
}

// openSessions opens n sessions, dialParallel at a time; on any failure it
// closes those it opened and returns the first error.
func openSessions(g *beamgateProc, n int, cookie string) ([]*loadSession, error) {
	sessions := make([]*loadSession, n)
	errs := make([]error, n)
	sem := make(chan struct{}, dialParallel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sessions[i], errs[i] = openSession(g, fmt.Sprintf("load%d@localhost", i), cookie)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			closeSessions(sessions)
			return nil, fmt.Errorf("session %d of %d: %w", i, n, err)
		}
	}
	return sessions, nil
}

func closeSessions(sessions []*loadSession) {
	for _, s := range sessions {
		if s != nil {
			s.close()
		}
	}
}

// pollCalls is one observer-style refresh (what Load Charts and the
// System tab fetch): memory, reductions, run queue and process count.
var pollCalls = []struct {
	m, f term.Atom
	args []term.Term
}{
	{"erlang", "memory", nil},
	{"erlang", "statistics", []term.Term{term.Atom("reductions")}},
	{"erlang", "statistics", []term.Term{term.Atom("run_queue")}},
	{"erlang", "system_info", []term.Term{term.Atom("process_count")}},
}

// pollLoad is the poll loop of every session: each session refreshes once
// per interval (first refresh at a random phase) until stopped.
type pollLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	calls  atomic.Int64
	errs   atomic.Int64

	mu       sync.Mutex
	samples  []time.Duration
	firstErr error
}

func startPollLoad(sessions []*loadSession, interval, maxRun time.Duration) *pollLoad {
	ctx, cancel := context.WithTimeout(context.Background(), maxRun)
	l := &pollLoad{cancel: cancel}
	for _, s := range sessions {
		l.wg.Add(1)
		go l.run(ctx, s, interval)
	}
	return l
}

func (l *pollLoad) run(ctx context.Context, s *loadSession, interval time.Duration) {
	defer l.wg.Done()
	timer := time.NewTimer(rand.N(interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		for _, c := range pollCalls {
			cctx, cancel := context.WithTimeout(ctx, pollCallWait)
			t0 := time.Now()
			_, err := s.dist.Call(cctx, c.m, c.f, c.args)
			d := time.Since(t0)
			cancel()
			if ctx.Err() != nil {
				return
			}
			l.record(d, err)
		}
		timer.Reset(interval)
	}
}

func (l *pollLoad) record(d time.Duration, err error) {
	l.calls.Add(1)
	if err != nil {
		l.errs.Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil && l.firstErr == nil {
		l.firstErr = err
	}
	if err == nil && len(l.samples) < maxPollSamples {
		l.samples = append(l.samples, d)
	}
}

// stop ends the loops and waits for them (each is bounded by pollCallWait).
func (l *pollLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// percentile is the q-th percentile of the poll calls' round trips.
func (l *pollLoad) percentile(q int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) == 0 {
		return 0
	}
	s := slices.Clone(l.samples)
	slices.Sort(s)
	return s[max(0, (len(s)*q+99)/100-1)]
}
