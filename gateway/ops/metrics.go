package ops

import (
	"runtime"
	"sync/atomic"
	"time"

	"beamgate/audit"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "beamgate"

// Label values of the metrics with labels. Every label has a small fixed
// set of values, written here or in rules.go; nothing from a record's
// free text (a user, a node, a pid, a cookie) ever becomes one.
const (
	ResultStarted = "started"
	ResultRefused = "refused"
	ResultOK      = "ok"
	ResultFailed  = "failed"
	// Other is the value of a label whose input is not in its fixed set.
	Other = "other"
)

// Authentication failure reasons (beamgate_auth_failures_total{reason}).
const (
	AuthUnknownUser = "unknown_user"
	AuthBadKey      = "bad_key"
	AuthBadCert     = "bad_cert"
	AuthTooMany     = "too_many"
	AuthOther       = Other
)

// AuthReasons is every value of beamgate_auth_failures_total's reason.
var AuthReasons = []string{AuthUnknownUser, AuthBadKey, AuthBadCert, AuthTooMany, AuthOther}

// decisions are the values of beamgate_decisions_total's decision label,
// indexed by decisionIndex; the last is Other.
var decisions = []string{string(audit.DecisionAllow), string(audit.DecisionDeny), string(audit.DecisionAllowWrite), string(audit.DecisionInfo), Other}

func decisionIndex(d audit.Decision) int {
	switch d {
	case audit.DecisionAllow:
		return 0
	case audit.DecisionDeny:
		return 1
	case audit.DecisionAllowWrite:
		return 2
	case audit.DecisionInfo:
		return 3
	}
	return 4
}

// Histogram buckets, in seconds.
var (
	appendBuckets   = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	vaultBuckets    = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	sessionBuckets  = []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400}
	relayDirections = []string{string(audit.DirE2P), string(audit.DirP2E)}
)

// Metrics are beamgate's Prometheus metrics, in a registry of their own
// (never the global one). Its methods are safe for concurrent use, and
// for a nil *Metrics (they do nothing), so callers need not check whether
// the ops listener is on.
type Metrics struct {
	reg *prometheus.Registry

	connsActive    prometheus.Gauge
	authFailures   *prometheus.CounterVec
	sessionsActive prometheus.Gauge
	sessionsTotal  *prometheus.CounterVec
	sessionsOK     prometheus.Counter // sessionsTotal{result="started"}
	sessionsNo     prometheus.Counter // sessionsTotal{result="refused"}
	sessionSecs    prometheus.Histogram
	decisions      *prometheus.CounterVec
	relayBytes     *relayBytes
	buffered       *valueGauge // production output held for engineers now
	bufferBudget   *valueGauge // limits.buffer_budget
	bufferCap      *valueGauge // limits.max_buffered_per_session
	appendSecs     prometheus.Histogram
	auditFailures  prometheus.Counter
	vaultSecs      prometheus.Histogram
	reloads        *prometheus.CounterVec
	cookieAge      *ageGauge
	revocationAge  *ageGauge

	authBy [5]prometheus.Counter // by authIndex, as AuthReasons
	// decisionBy caches the decisions children: [rule][decision], made on
	// first use so that only combinations seen are exported.
	decisionBy []atomic.Pointer[prometheus.Counter]
}

// NewMetrics registers every metric in a new registry, with the Go
// runtime's and the process's own collectors. version is the gateway's
// version (beamgate_build_info's version label).
func NewMetrics(version string) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels say which beamgate runs."}, []string{"version", "go_version"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	f(build)
	m.connsActive = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "ssh_connections_active",
		Help: "Authenticated SSH connections open now."})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "auth_failures_total",
		Help: "SSH connections that ended without authenticating, by reason: unknown_user, bad_key, bad_cert, too_many, other."}, []string{"reason"})
	for i, r := range AuthReasons {
		m.authBy[i] = m.authFailures.WithLabelValues(r)
	}
	m.sessionsActive = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "sessions_active",
		Help: "Relayed distribution sessions (engineer node to production node) open now."})
	m.sessionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "sessions_total",
		Help: "Relayed distribution sessions, by result: started, refused (the handshake failed)."}, []string{"result"})
	m.sessionsOK, m.sessionsNo = m.sessionsTotal.WithLabelValues(ResultStarted), m.sessionsTotal.WithLabelValues(ResultRefused)
	m.sessionSecs = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "session_duration_seconds",
		Help: "How long relayed sessions lasted, observed when they end.", Buckets: sessionBuckets})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "decisions_total",
		Help: "Policy decisions on relayed messages and view calls, by decision and rule (built-in rule names; any other rule, a custom profile's included, is counted as other)."},
		[]string{"decision", "rule"})
	m.decisionBy = make([]atomic.Pointer[prometheus.Counter], len(ruleNames)*len(decisions))
	m.relayBytes = &relayBytes{desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "relay_bytes_total"),
		"Distribution bytes relayed, by direction (e2p: engineer to production, p2e: production to engineer), live sessions' included.", []string{"direction"}, nil)}
	m.buffered = newValueGauge("relay_buffered_bytes", "Production output held by the gateway for engineers that read slowly or not at all, every session together.")
	m.bufferBudget = newValueGauge("relay_buffer_budget_bytes", "limits.buffer_budget: past it the sessions holding the most are cut.")
	m.bufferCap = newValueGauge("relay_session_buffer_cap_bytes", "limits.max_buffered_per_session: past it a session is cut.")
	m.appendSecs = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "audit_append_seconds",
		Help: "How long one audit append took, queueing and writing to disk included.", Buckets: appendBuckets})
	m.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "audit_failures_total",
		Help: "Audit appends that failed (what they gated was refused)."})
	m.vaultSecs = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "vault_request_seconds",
		Help: "How long Vault requests took.", Buckets: vaultBuckets})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "config_reloads_total",
		Help: "Configuration reloads (SIGHUP), by result: ok, failed."}, []string{"result"})
	m.reloads.WithLabelValues(ResultOK)
	m.reloads.WithLabelValues(ResultFailed)
	m.cookieAge = newAgeGauge("cookie_age_seconds", "Age of the oldest production cookie the gateway holds, since Vault last confirmed it (absent without Vault).")
	m.revocationAge = newAgeGauge("revocation_list_age_seconds", "Time since the revocation list was last read from Vault (absent without Vault).")
	for _, c := range []prometheus.Collector{m.connsActive, m.authFailures, m.sessionsActive, m.sessionsTotal, m.sessionSecs,
		m.decisions, m.relayBytes, m.buffered, m.bufferBudget, m.bufferCap, m.appendSecs, m.auditFailures, m.vaultSecs, m.reloads, m.cookieAge, m.revocationAge} {
		f(c)
	}
	return m
}

// Registry is the metrics' own registry (what /metrics serves).
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// ObserveVault records how long one Vault request took.
func (m *Metrics) ObserveVault(d time.Duration) {
	if m != nil {
		m.vaultSecs.Observe(d.Seconds())
	}
}

// IncReload counts one configuration reload: ok, or failed (nothing
// changed).
func (m *Metrics) IncReload(ok bool) {
	if m == nil {
		return
	}
	r := ResultFailed
	if ok {
		r = ResultOK
	}
	m.reloads.WithLabelValues(r).Inc()
}

// SetCookieAge feeds beamgate_cookie_age_seconds: f is called at each
// scrape and must answer at once; ok false leaves the sample out.
func (m *Metrics) SetCookieAge(f func() (age time.Duration, ok bool)) {
	if m != nil {
		m.cookieAge.f.Store(&f)
	}
}

// SetRevocationAge feeds beamgate_revocation_list_age_seconds, as
// SetCookieAge does.
func (m *Metrics) SetRevocationAge(f func() (age time.Duration, ok bool)) {
	if m != nil {
		m.revocationAge.f.Store(&f)
	}
}

// decision counts one decision; rule is an index into ruleNames.
func (m *Metrics) decision(rule int, d audit.Decision) {
	i := rule*len(decisions) + decisionIndex(d)
	p := m.decisionBy[i].Load()
	if p == nil {
		c := m.decisions.WithLabelValues(decisions[decisionIndex(d)], ruleNames[rule])
		p = &c
		m.decisionBy[i].Store(p)
	}
	(*p).Inc()
}

// ageGauge is a gauge in seconds read from a function at scrape time,
// left out while there is no function or it knows no value.
type ageGauge struct {
	desc *prometheus.Desc
	f    atomic.Pointer[func() (time.Duration, bool)]
}

// SetRelayBytes feeds beamgate_relay_bytes_total: f returns the bytes
// relayed so far in each direction, ended and live sessions together (the
// relay's count, read at each scrape, so a long session shows as it goes).
func (m *Metrics) SetRelayBytes(f func() (e2p, p2e int64)) {
	if m != nil {
		m.relayBytes.f.Store(&f)
	}
}

// SetBuffers feeds the buffer metrics: the gateway-wide budget and the
// per-session cap (fixed until a restart), and held, what every session
// holds now.
func (m *Metrics) SetBuffers(budget, perSession int64, held func() int64) {
	if m == nil {
		return
	}
	m.bufferBudget.set(func() float64 { return float64(budget) })
	m.bufferCap.set(func() float64 { return float64(perSession) })
	m.buffered.set(func() float64 { return float64(held()) })
}

// valueGauge is a gauge read from a function at each scrape (absent until
// set).
type valueGauge struct {
	desc *prometheus.Desc
	f    atomic.Pointer[func() float64]
}

func newValueGauge(name, help string) *valueGauge {
	return &valueGauge{desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil)}
}

func (g *valueGauge) set(f func() float64) { g.f.Store(&f) }

// Describe implements prometheus.Collector.
func (g *valueGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *valueGauge) Collect(ch chan<- prometheus.Metric) {
	if p := g.f.Load(); p != nil {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, (*p)())
	}
}

// relayBytes is beamgate_relay_bytes_total, read from the relay at each
// scrape (0 until SetRelayBytes).
type relayBytes struct {
	desc *prometheus.Desc
	f    atomic.Pointer[func() (int64, int64)]
}

// Describe implements prometheus.Collector.
func (r *relayBytes) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

// Collect implements prometheus.Collector.
func (r *relayBytes) Collect(ch chan<- prometheus.Metric) {
	var e2p, p2e int64
	if p := r.f.Load(); p != nil {
		e2p, p2e = (*p)()
	}
	ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(e2p), relayDirections[0])
	ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(p2e), relayDirections[1])
}

func newAgeGauge(name, help string) *ageGauge {
	return &ageGauge{desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil)}
}

// Describe implements prometheus.Collector.
func (g *ageGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *ageGauge) Collect(ch chan<- prometheus.Metric) {
	p := g.f.Load()
	if p == nil {
		return
	}
	if d, ok := (*p)(); ok {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, d.Seconds())
	}
}
