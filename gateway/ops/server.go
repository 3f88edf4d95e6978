// Package ops owns beamgate's operations HTTP listener (ops.listen):
// Prometheus metrics (/metrics, from its own registry), liveness (/livez)
// and readiness (/readyz, from the checks registered with the server). It
// also owns the metrics themselves ([Metrics]) and [MetricsSink], the
// audit.Sink wrapper that derives most of them from the audit records the
// gateway writes anyway. Nothing it exports carries a user, a node name,
// a cookie or a pid.
package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Bounds of the ops listener's HTTP server.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second // a scrape of a large registry
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 8 << 10
	// scrapeTimeout bounds one /metrics answer; maxScrapes bounds how many
	// are gathered at once.
	scrapeTimeout = 10 * time.Second
	maxScrapes    = 4
)

// Draining is the /readyz failure once SetDraining was called.
const Draining = "draining: the gateway is shutting down"

// errNotChecked is a probe's result until its first run ends.
var errNotChecked = errors.New("not checked yet")

// Check is one readiness check. /readyz calls Err on every request, so it
// must answer at once from state the part already holds (never the
// network: use [Server.AddProbe] for that); nil passes.
type Check struct {
	Name string // e.g. "audit", "cookies", "revocations", "vault-token"
	Err  func() error
}

// Server is the ops listener. Its zero value is not usable: call New.
type Server struct {
	addr    string
	metrics *Metrics
	log     *zap.Logger
	http    *http.Server

	mu     sync.Mutex
	checks []Check
	ln     net.Listener

	draining atomic.Bool

	ctx    context.Context // cancelled by Close: stops the probes
	cancel context.CancelFunc
	probes sync.WaitGroup
}

// New returns a server for addr (host:port) serving m's registry; nothing
// is bound until Listen or Start. log may be nil.
func New(addr string, m *Metrics, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{addr: addr, metrics: m, log: log, ctx: ctx, cancel: cancel}
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
			ErrorLog:            zap.NewStdLog(log),
			ErrorHandling:       promhttp.ContinueOnError,
			Registry:            m.reg,
			MaxRequestsInFlight: maxScrapes,
			Timeout:             scrapeTimeout,
		})))
	}
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ok\n") })
	mux.HandleFunc("GET /readyz", s.readyz)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          zap.NewStdLog(log),
	}
	return s
}

// AddCheck registers a readiness check; /readyz reports them in the
// order they were added.
func (s *Server) AddCheck(c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, c)
}

// AddProbe registers a readiness check that may wait (a Vault request):
// probe runs in the background now and then every interval, each run
// bounded by timeout, until Close; /readyz reports the latest result
// (failing with "not checked yet" until the first run ends).
func (s *Server) AddProbe(name string, every, timeout time.Duration, probe func(ctx context.Context) error) {
	var (
		mu  sync.Mutex
		err = errNotChecked
	)
	s.AddCheck(Check{Name: name, Err: func() error { mu.Lock(); defer mu.Unlock(); return err }})
	s.probes.Add(1)
	go func() {
		defer s.probes.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			ctx, cancel := context.WithTimeout(s.ctx, timeout)
			e := probe(ctx)
			cancel()
			if s.ctx.Err() != nil {
				return
			}
			mu.Lock()
			err = e
			mu.Unlock()
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// SetDraining makes /readyz fail from now on (the gateway is shutting
// down: load balancers stop sending new engineers). /livez still passes.
func (s *Server) SetDraining() { s.draining.Store(true) }

// Listen binds the address now, so that a busy port is a start error
// before anything else is done; nothing is served until Start. An address
// that is not loopback logs a warning: anyone who reaches it reads the
// metrics and the readiness checks' errors.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("ops: %w", err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		s.log.Warn("the ops listener is not on a loopback address: whoever reaches it reads /metrics and /readyz; restrict it (firewall, Kubernetes NetworkPolicy) to the scraper and the kubelet",
			zap.String("addr", ln.Addr().String()))
	}
	s.ln = ln
	return nil
}

// Start binds the address (unless Listen did) and serves in the
// background until Close.
func (s *Server) Start() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	go func() {
		if err := s.Serve(ln); err != nil {
			s.log.Error("ops listener stopped", zap.Error(err))
		}
	}()
	return nil
}

// Serve serves on l until Close; it returns nil once closed.
func (s *Server) Serve(l net.Listener) error {
	s.log.Info("ops listener serving /metrics, /livez, /readyz", zap.String("addr", l.Addr().String()))
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) && s.ctx.Err() != nil {
		return nil
	}
	return err
}

// Addr is the bound address (nil before Listen).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops the probes and the listener, letting answers in progress
// finish until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	s.cancel()
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	// Shutdown closes the listener Serve took; one never served (or not
	// yet) is closed here.
	err := s.http.Shutdown(ctx)
	if ln != nil {
		if e := ln.Close(); e != nil && !errors.Is(e, net.ErrClosed) {
			err = errors.Join(err, e)
		}
	}
	done := make(chan struct{})
	go func() { s.probes.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("ops: probes still running: %w", ctx.Err()))
	}
	return err
}

// Failing returns one line per failing check, "name: error", in the order
// the checks were added (the draining line first); none when ready.
func (s *Server) Failing() []string {
	var out []string
	if s.draining.Load() {
		out = append(out, Draining)
	}
	s.mu.Lock()
	checks := s.checks
	s.mu.Unlock()
	for _, c := range checks {
		if err := c.Err(); err != nil {
			out = append(out, c.Name+": "+oneLine(err.Error()))
		}
	}
	return out
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	failing := s.Failing()
	if len(failing) == 0 {
		plain(w, http.StatusOK, "ok\n")
		return
	}
	plain(w, http.StatusServiceUnavailable, strings.Join(failing, "\n")+"\n")
}

func plain(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// oneLine keeps a check's error on its line (errors.Join writes several).
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
