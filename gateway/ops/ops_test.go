package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/configs"
	"beamgate/cookies"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"go.yaml.in/yaml/v3"
)

// testSink accepts every record, or fails every append with err.
type testSink struct{ err error }

func (s *testSink) Append(context.Context, *audit.Record) error { return s.err }
func (s *testSink) Failed() <-chan struct{}                     { return nil }
func (s *testSink) Err() error                                  { return s.err }

// startServer starts a server on a loopback port and returns its base URL.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

var client = &http.Client{Timeout: 10 * time.Second}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestReadyz: /readyz passes with every check passing, and otherwise
// answers 503 naming each failing check and its error on a line of its
// own (draining first); /livez answers 200 "ok" whatever the checks say.
func TestReadyz(t *testing.T) {
	s := New("127.0.0.1:0", NewMetrics("test"), nil)
	var auditErr, cookieErr atomic.Pointer[error]
	errOf := func(p *atomic.Pointer[error]) func() error {
		return func() error {
			if e := p.Load(); e != nil {
				return *e
			}
			return nil
		}
	}
	s.AddCheck(Check{Name: "audit", Err: errOf(&auditErr)})
	s.AddCheck(Check{Name: "cookies", Err: errOf(&cookieErr)})
	s.AddCheck(Check{Name: "fine", Err: func() error { return nil }})
	base := startServer(t, s)

	if code, body := get(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("all passing: %d %q", code, body)
	}
	e1 := errors.New("audit: write /var/log/beamgate/audit.jsonl: no space left on device")
	e2 := errors.Join(errors.New("cluster \"a\": Vault is unreachable"), errors.New("cluster \"b\": gone"))
	auditErr.Store(&e1)
	cookieErr.Store(&e2)
	code, body := get(t, base+"/readyz")
	want := "audit: audit: write /var/log/beamgate/audit.jsonl: no space left on device\n" +
		"cookies: cluster \"a\": Vault is unreachable; cluster \"b\": gone\n"
	if code != http.StatusServiceUnavailable || body != want {
		t.Fatalf("two failing: %d\n%s\nwant\n%s", code, body, want)
	}
	auditErr.Store(nil)
	if code, body := get(t, base+"/readyz"); code != 503 || strings.Contains(body, "audit") || !strings.HasPrefix(body, "cookies: ") {
		t.Fatalf("one failing: %d %q", code, body)
	}
	if code, body := get(t, base+"/livez"); code != 200 || body != "ok\n" {
		t.Fatalf("livez with a failing check: %d %q", code, body)
	}
	cookieErr.Store(nil)
	s.SetDraining()
	if code, body := get(t, base+"/readyz"); code != 503 || body != Draining+"\n" {
		t.Fatalf("draining: %d %q", code, body)
	}
	if code, body := get(t, base+"/livez"); code != 200 || body != "ok\n" {
		t.Fatalf("livez while draining: %d %q", code, body)
	}
	if code, _ := get(t, base+"/"); code != 404 {
		t.Errorf("/: %d", code)
	}
	if resp, err := client.Post(base+"/readyz", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// Header sizes are bounded.
	req, _ := http.NewRequest("GET", base+"/livez", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if s.http.ReadHeaderTimeout == 0 || s.http.ReadTimeout == 0 || s.http.WriteTimeout == 0 || s.http.IdleTimeout == 0 {
		t.Errorf("timeouts not all set: %+v", s.http)
	}
}

// TestProbe: a probe's check fails with "not checked yet" until its first
// run, then reports the latest run; Close stops it.
func TestProbe(t *testing.T) {
	s := New("127.0.0.1:0", nil, nil)
	release := make(chan struct{})
	var runs atomic.Int32
	s.AddProbe("vault-token", 10*time.Millisecond, time.Second, func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			<-release
			return errors.New("permission denied")
		}
		return nil
	})
	if f := s.Failing(); !slices.Equal(f, []string{"vault-token: not checked yet"}) {
		t.Fatalf("before the first run: %q", f)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Failing()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("probe never passed: %q after %d runs", s.Failing(), runs.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n := runs.Load()
	time.Sleep(50 * time.Millisecond)
	if runs.Load() != n {
		t.Error("probe still runs after Close")
	}
}

// TestListenWarnsOffLoopback: binding an address other than loopback logs
// a warning (not an error); loopback does not.
func TestListenWarnsOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		warn bool
	}{{"127.0.0.1:0", false}, {"0.0.0.0:0", true}} {
		core, logs := observer.New(zapcore.WarnLevel)
		s := New(tc.addr, nil, zap.New(core))
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.Close(ctx)
		cancel()
		if got := logs.FilterMessageSnippet("not on a loopback address").Len() > 0; got != tc.warn {
			t.Errorf("%s: warned %v, want %v (%v)", tc.addr, got, tc.warn, logs.All())
		}
	}
	// A busy port is an error at Listen.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := New(l.Addr().String(), nil, nil).Listen(); err == nil {
		t.Error("Listen on a busy port succeeded")
	}
}

// sample is one line of the text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrape reads /metrics and parses its samples.
func scrape(t *testing.T, base string) []sample {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	var out []sample
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unparsable line %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	return out
}

// find returns the value of the sample name{labels}, and whether there is one.
func find(samples []sample, name string, labels ...string) (float64, bool) {
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

// Identifying strings the records below carry; none may reach a label.
const (
	secretUser   = "alice-secret-user"
	secretNode   = "prismatic@secret-host-7"
	secretCookie = "SECRETCOOKIEVALUE"
	secretPid    = "<0.4242.0>"
	secretAddr   = "198.51.100.7:50001"
)

// feed appends a realistic stream of records through a MetricsSink.
func feed(t *testing.T, ms *MetricsSink) {
	t.Helper()
	ctx := context.Background()
	base := audit.Record{User: secretUser, KeyID: "SHA256:keyfingerprint", SourceAddr: secretAddr,
		Engineer: "alice_erl@laptop", Target: secretNode, Cluster: "prismatic", Session: "abcdef012345-0011223344"}
	add := func(mod func(r *audit.Record)) {
		r := base
		mod(&r)
		ms.Append(ctx, &r)
	}
	add(func(r *audit.Record) { r.Event, r.Decision = audit.EventLogin, audit.DecisionAllow })
	add(func(r *audit.Record) {
		r.Event, r.Decision = audit.EventSessionStart, audit.DecisionAllow
		r.Detail = map[string]string{"profile": "readonly"}
	})
	add(func(r *audit.Record) {
		r.Event, r.Decision, r.Rule, r.MFA, r.Dir = audit.EventMessage, audit.DecisionAllow, "net.identity", "erlang:node/0", audit.DirE2P
	})
	add(func(r *audit.Record) {
		r.Event, r.Decision, r.Rule, r.MFA = audit.EventMessage, audit.DecisionDeny, "ets.write", "ets:insert/2"
		r.Args = "[" + secretCookie + ", " + secretPid + "]"
		r.Reason = "a state change; this role's mode is enforce " + secretPid
	})
	add(func(r *audit.Record) {
		r.Event, r.Decision, r.Rule = audit.EventMessage, audit.DecisionDeny, "my_company.custom_rule_"+secretUser
	})
	add(func(r *audit.Record) {
		r.Event, r.Decision, r.Rule = audit.EventView, audit.DecisionAllow, "process.info"
		r.Detail = map[string]string{"view": "top"}
	})
	add(func(r *audit.Record) {
		r.Event, r.Decision, r.Rule, r.Reason = audit.EventSessionRefused, audit.DecisionDeny, "gateway-cookie", "wrong cookie "+secretCookie
		r.Session = "other-session"
	})
	add(func(r *audit.Record) {
		r.Event, r.Decision, r.Reason = audit.EventSessionEnd, audit.DecisionInfo, "ended"
		r.BytesIn, r.BytesOut, r.MsgsIn, r.MsgsOut = 1000, 25000, 10, 20
	})
	add(func(r *audit.Record) { r.Event, r.Decision = audit.EventLogout, audit.DecisionInfo })
	add(func(r *audit.Record) {
		r.Event, r.Decision = audit.EventLogin, audit.DecisionDeny
		r.SourceAddr = "198.51.100.8:1"
		r.Reason = "ssh-ed25519: unknown user (SHA256:abc) " + secretUser
	})
}

// TestMetricsLabels: after a realistic record stream, every beamgate_
// metric carries only its fixed labels, no label value is a user, node,
// cookie, pid or address from the records, unknown rules are counted as
// "other", and the counters say what happened.
func TestMetricsLabels(t *testing.T) {
	m := NewMetrics("v1.2.3 commit abc")
	ms := NewMetricsSink(&testSink{}, m)
	feed(t, ms)
	m.SetRelayBytes(func() (int64, int64) { return 1000, 25000 }) // the relay's live count
	m.IncReload(true)
	m.IncReload(false)
	m.IncReload(false)
	m.ObserveVault(30 * time.Millisecond)
	m.SetCookieAge(func() (time.Duration, bool) { return 90 * time.Second, true })
	m.SetRevocationAge(func() (time.Duration, bool) { return 0, false })
	m.SetBuffers(24<<20, 64<<20, func() int64 { return 4096 })
	s := New("127.0.0.1:0", m, nil)
	samples := scrape(t, startServer(t, s))

	allowed := map[string][]string{
		"beamgate_build_info":               {"version", "go_version"},
		"beamgate_auth_failures_total":      {"reason"},
		"beamgate_sessions_total":           {"result"},
		"beamgate_decisions_total":          {"decision", "rule"},
		"beamgate_relay_bytes_total":        {"direction"},
		"beamgate_config_reloads_total":     {"result"},
		"beamgate_session_duration_seconds": {"le"},
		"beamgate_audit_append_seconds":     {"le"},
		"beamgate_vault_request_seconds":    {"le"},
	}
	values := map[string][]string{
		"reason":    AuthReasons,
		"result":    {ResultStarted, ResultRefused, ResultOK, ResultFailed},
		"decision":  decisions,
		"rule":      ruleNames,
		"direction": relayDirections,
	}
	seen := map[string]bool{}
	for _, sm := range samples {
		for _, v := range sm.labels {
			for _, bad := range []string{secretUser, secretNode, secretCookie, secretPid, secretAddr, "alice", "prismatic", "laptop", "0.4242"} {
				if strings.Contains(v, bad) {
					t.Errorf("%s has a label value %q containing %q", sm.name, v, bad)
				}
			}
		}
		if !strings.HasPrefix(sm.name, "beamgate_") {
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(sm.name, "_bucket"), "_sum"), "_count")
		seen[base] = true
		for l, v := range sm.labels {
			if !slices.Contains(allowed[base], l) {
				t.Errorf("%s has label %s=%q, not one of %v", sm.name, l, v, allowed[base])
			}
			if vs, ok := values[l]; ok && !slices.Contains(vs, v) {
				t.Errorf("%s{%s=%q}: not one of the fixed values", sm.name, l, v)
			}
		}
	}
	for _, name := range []string{"beamgate_build_info", "beamgate_ssh_connections_active", "beamgate_auth_failures_total",
		"beamgate_sessions_active", "beamgate_sessions_total", "beamgate_session_duration_seconds", "beamgate_decisions_total",
		"beamgate_relay_bytes_total", "beamgate_audit_append_seconds", "beamgate_audit_failures_total",
		"beamgate_vault_request_seconds", "beamgate_cookie_age_seconds", "beamgate_config_reloads_total",
		"beamgate_relay_buffered_bytes", "beamgate_relay_buffer_budget_bytes", "beamgate_relay_session_buffer_cap_bytes"} {
		if !seen[name] {
			t.Errorf("%s not exported", name)
		}
	}
	if seen["beamgate_revocation_list_age_seconds"] {
		t.Error("revocation list age exported while its function knows no value")
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"beamgate_build_info", []string{"version", "v1.2.3 commit abc"}, 1},
		{"beamgate_decisions_total", []string{"decision", "allow", "rule", "net.identity"}, 1},
		{"beamgate_decisions_total", []string{"decision", "deny", "rule", "ets.write"}, 1},
		{"beamgate_decisions_total", []string{"decision", "deny", "rule", "other"}, 1},
		{"beamgate_decisions_total", []string{"decision", "allow", "rule", "process.info"}, 1},
		{"beamgate_sessions_total", []string{"result", "started"}, 1},
		{"beamgate_sessions_total", []string{"result", "refused"}, 1},
		{"beamgate_sessions_active", nil, 0},
		{"beamgate_session_duration_seconds_count", nil, 1},
		{"beamgate_relay_buffered_bytes", nil, 4096},
		{"beamgate_relay_buffer_budget_bytes", nil, 24 << 20},
		{"beamgate_relay_session_buffer_cap_bytes", nil, 64 << 20},
		{"beamgate_relay_bytes_total", []string{"direction", "e2p"}, 1000},
		{"beamgate_relay_bytes_total", []string{"direction", "p2e"}, 25000},
		{"beamgate_ssh_connections_active", nil, 0},
		{"beamgate_auth_failures_total", []string{"reason", "unknown_user"}, 1},
		{"beamgate_auth_failures_total", []string{"reason", "bad_key"}, 0},
		{"beamgate_audit_append_seconds_count", nil, 10},
		{"beamgate_audit_failures_total", nil, 0},
		{"beamgate_config_reloads_total", []string{"result", "ok"}, 1},
		{"beamgate_config_reloads_total", []string{"result", "failed"}, 2},
		{"beamgate_vault_request_seconds_count", nil, 1},
		{"beamgate_cookie_age_seconds", nil, 90},
	} {
		if got, ok := find(samples, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Only decisions seen are exported: no zero series for every rule.
	if _, ok := find(samples, "beamgate_decisions_total", "rule", "mnesia.write"); ok {
		t.Error("a decision never made is exported")
	}
}

// TestSinkCounts: the active gauges follow logins and sessions (a failed
// handshake after an allow closes the connection too); a failed append
// counts as an audit failure, and of an allow it counts nothing else,
// while refusals still count; records pass through unchanged.
func TestSinkCounts(t *testing.T) {
	m := NewMetrics("test")
	next := &testSink{}
	ms := NewMetricsSink(next, m)
	now := time.Unix(1000, 0)
	ms.now = func() time.Time { return now }
	ctx := context.Background()
	rec := func(ev audit.Event, d audit.Decision, addr, session string) *audit.Record {
		return &audit.Record{Event: ev, Decision: d, SourceAddr: addr, Session: session, User: "u"}
	}
	ms.Append(ctx, rec(audit.EventLogin, audit.DecisionAllow, "a:1", "s1"))
	ms.Append(ctx, rec(audit.EventLogin, audit.DecisionAllow, "a:2", "s2"))
	ms.Append(ctx, rec(audit.EventLogin, audit.DecisionAllow, "a:3", "s3"))
	if n := len(ms.conns); n != 3 {
		t.Fatalf("3 logins: %d connections", n)
	}
	ms.Append(ctx, rec(audit.EventDisconnect, audit.DecisionInfo, "a:1", "s1")) // the logout follows
	ms.Append(ctx, rec(audit.EventLogout, audit.DecisionInfo, "a:1", "s1"))
	ms.Append(ctx, rec(audit.EventLogin, audit.DecisionDeny, "a:2", "")) // handshake failed after the allow
	ms.Append(ctx, rec(audit.EventLogout, audit.DecisionInfo, "a:9", "s9"))
	if n := len(ms.conns); n != 1 {
		t.Fatalf("after two ends: %d connections", n)
	}
	ms.Append(ctx, rec(audit.EventSessionStart, audit.DecisionAllow, "a:3", "r1"))
	ms.Append(ctx, rec(audit.EventSessionStart, audit.DecisionAllow, "a:3", "r2"))
	now = now.Add(90 * time.Second)
	ms.Append(ctx, rec(audit.EventSessionEnd, audit.DecisionInfo, "a:3", "r1"))
	if n := len(ms.sessions); n != 1 {
		t.Fatalf("sessions: %d", n)
	}

	next.err = errors.New("disk full")
	r := rec(audit.EventMessage, audit.DecisionAllow, "a:3", "r2")
	r.Rule = "net.identity"
	if err := ms.Append(ctx, r); err == nil || err.Error() != "disk full" {
		t.Fatalf("Append returned %v", err)
	}
	ms.Append(ctx, rec(audit.EventSessionStart, audit.DecisionAllow, "a:3", "r3")) // refused: not started
	r = rec(audit.EventMessage, audit.DecisionDeny, "a:3", "r2")
	r.Rule = "ets.write"
	ms.Append(ctx, r)
	ms.Append(ctx, rec(audit.EventSessionEnd, audit.DecisionInfo, "a:3", "r2")) // ended all the same
	if ms.Err() == nil || ms.Failed() != nil {
		t.Error("Err/Failed do not pass through")
	}
	next.err = nil

	samples := scrape(t, startServer(t, New("127.0.0.1:0", m, nil)))
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"beamgate_ssh_connections_active", nil, 1},
		{"beamgate_sessions_active", nil, 0},
		{"beamgate_sessions_total", []string{"result", "started"}, 2},
		{"beamgate_session_duration_seconds_count", nil, 2},
		{"beamgate_session_duration_seconds_sum", nil, 180},
		{"beamgate_audit_failures_total", nil, 4},
		{"beamgate_decisions_total", []string{"decision", "deny", "rule", "ets.write"}, 1},
	} {
		if got, ok := find(samples, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := find(samples, "beamgate_decisions_total", "decision", "allow"); ok {
		t.Error("an allow whose append failed was counted")
	}
}

// TestRuleLabel: the policy's rule names are their own label; anything
// else, a custom profile's rule included, is "other".
func TestRuleLabel(t *testing.T) {
	for rule, want := range map[string]string{
		"ets.write": "ets.write", "net.identity": "net.identity", "secrets": "secrets", "default": "default",
		"cluster.membership": "cluster.membership", "session.own": "session.own", "": "other",
		"my.custom": "other", "ETS.WRITE": "other", "ets.write ": "other", "other": "other",
	} {
		if got := RuleLabel(rule); got != want {
			t.Errorf("RuleLabel(%q) = %q, want %q", rule, got, want)
		}
	}
	seen := map[string]bool{}
	for _, r := range ruleNames {
		if seen[r] {
			t.Errorf("rule %q listed twice", r)
		}
		seen[r] = true
	}
}

// TestRuleAllowlistCoversPolicy: every rule of the built-in profiles and
// every rule name the policy, relay and views code writes is in the
// allowlist, so none of the policy's own decisions is counted as other.
func TestRuleAllowlistCoversPolicy(t *testing.T) {
	ents, err := configs.Policies.ReadDir("policy")
	if err != nil || len(ents) == 0 {
		t.Fatalf("built-in profiles: %v", err)
	}
	for _, e := range ents {
		data, err := configs.Policies.ReadFile("policy/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		var pf map[string]any
		if err := yaml.Unmarshal(data, &pf); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, section := range []string{"calls", "spawns", "never", "writes"} {
			rules, _ := pf[section].([]any)
			for _, r := range rules {
				name, _ := r.(map[string]any)["rule"].(string)
				n++
				if RuleLabel(name) != name {
					t.Errorf("%s: rule %q (%s) is not in the allowlist", e.Name(), name, section)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no rules found", e.Name())
		}
	}
	// The names the code writes: add("name", ...) in always.go, and the
	// rule arguments of allow/denied/write/refuse/linkSignal, Rule: "..."
	// fields and rule, reason pairs.
	always := regexp.MustCompile(`\badd\("([^"]+)"`) // policy/always.go only
	patterns := []*regexp.Regexp{
		regexp.MustCompile(`\ballow\("([^"]+)"`),
		regexp.MustCompile(`\.(?:denied|write|refuse)\((?:&?\w+, )?m, "([^"]+)"`),
		regexp.MustCompile(`linkSignal\(m, [^,]+, "([^"]+)"\)`),
		regexp.MustCompile(`Rule: "([^"]+)"`),
		regexp.MustCompile(`d\.Rule, d\.Reason = "([^"]+)"`),
		regexp.MustCompile(`rule, reason = "([^"]+)"`),
		regexp.MustCompile(`return "([^"]+)", fmt\.Sprintf`),
		regexp.MustCompile(`s\.record\(audit\.EventMessage, audit\.Decision\w+, "([^"]+)"`),
		regexp.MustCompile(`"(view\.[a-z_]+)",`),
	}
	found := map[string]bool{}
	for _, dir := range []string{"../../policy", "../relay", "../views"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ps := patterns
			if filepath.Base(f) == "always.go" {
				ps = slices.Concat(patterns, []*regexp.Regexp{always})
			}
			for _, p := range ps {
				for _, m := range p.FindAllStringSubmatch(string(data), -1) {
					found[m[1]] = true
					if RuleLabel(m[1]) != m[1] {
						t.Errorf("%s: rule %q is not in the allowlist", f, m[1])
					}
				}
			}
		}
	}
	for _, must := range []string{"secrets", "remote-shell", "code-wrapper", "default", "identity", "send.registered",
		"cluster.membership", "net_kernel", "rex", "session.own", "monitor", "io.reply", "frame-size", "monitor.cleanup",
		"atom-budget", "unlink", "view.childspec_redacted"} {
		if !found[must] {
			t.Errorf("the source scan did not find rule %q: are its patterns out of date?", must)
		}
	}
}

// TestAuthReason maps the front door's refusal texts to the fixed set.
func TestAuthReason(t *testing.T) {
	for reason, want := range map[string]string{
		"ssh-ed25519: unknown user (SHA256:x)":                                                   AuthUnknownUser,
		"ssh-ed25519: public key not listed for user (SHA256:x)":                                 AuthBadKey,
		"ssh-ed25519-cert-v01@openssh.com: certificate signed by an unknown CA (x)":              AuthBadCert,
		"certificate refused: ssh: cert has expired":                                             AuthBadCert,
		"ssh-ed25519: public key not listed for user (a); certificate is not a user certificate": AuthBadCert,
		"too many connections for user":                                                          AuthTooMany,
		"revoked: the user, key or certificate is on the revocation list (left)":                 AuthOther,
		"the revocation list could not be read from Vault for longer than the stale limit; new logins are refused until Vault answers (live sessions continue)": AuthOther,
		"authentication not completed": AuthOther,
		"handshake timeout":            AuthOther,
		"too many connections still logging in (limits.max_unauthenticated is 64)": AuthTooMany,
		"method password refused":          AuthOther,
		"audit log unavailable: disk full": AuthOther,
		"":                                 AuthOther,
		"ssh-rsa: unknown user (x); too many connections": AuthTooMany,
	} {
		if got := AuthReason(reason); got != want {
			t.Errorf("AuthReason(%q) = %q, want %q", reason, got, want)
		}
		if AuthReasons[authIndex(reason)] != AuthReason(reason) {
			t.Errorf("authIndex(%q) disagrees with AuthReason", reason)
		}
	}
}

// fakeLister is a revocation list that fails while err is set.
type fakeLister struct{ err atomic.Pointer[error] }

func (f *fakeLister) List(context.Context) (cookies.Snapshot, error) {
	if e := f.err.Load(); e != nil {
		return cookies.Snapshot{}, *e
	}
	return cookies.Snapshot{Version: 3}, nil
}

// TestTrackRevocations: the revocations check fails until the list was
// read, passes while it is confirmed within the stale limit, and fails
// past it, as the front door then refuses logins; the age gauge follows.
func TestTrackRevocations(t *testing.T) {
	m := NewMetrics("test")
	s := New("127.0.0.1:0", m, nil)
	src := &fakeLister{}
	tr := s.TrackRevocations(src, time.Hour).(*revocationTracker)
	now := time.Unix(5000, 0)
	tr.now = func() time.Time { return now }
	if f := s.Failing(); len(f) != 1 || !strings.HasPrefix(f[0], "revocations: the revocation list has not been read") {
		t.Fatalf("before the first read: %q", f)
	}
	if snap, err := tr.List(context.Background()); err != nil || snap.Version != 3 {
		t.Fatalf("List: %v %v", snap, err)
	}
	if f := s.Failing(); len(f) != 0 {
		t.Fatalf("just read: %q", f)
	}
	e := errors.New("vault down")
	src.err.Store(&e)
	now = now.Add(59 * time.Minute)
	tr.List(context.Background())
	if f := s.Failing(); len(f) != 0 {
		t.Fatalf("59m unconfirmed: %q", f)
	}
	now = now.Add(2 * time.Minute)
	if f := s.Failing(); len(f) != 1 || !strings.Contains(f[0], "past the stale limit of 1h0m0s") {
		t.Fatalf("61m unconfirmed: %q", f)
	}
	if age, ok := tr.age(); !ok || age != 61*time.Minute {
		t.Errorf("age %v %v", age, ok)
	}
	samples := scrape(t, startServer(t, s))
	if v, ok := find(samples, "beamgate_revocation_list_age_seconds"); !ok || v != 3660 {
		t.Errorf("revocation list age gauge: %v %v", v, ok)
	}
}

// fakeVault answers the Vault probes.
type fakeVault struct {
	cookieErr, tokenErr atomic.Pointer[error]
	age                 atomic.Int64
}

func (f *fakeVault) CookieHealth(context.Context) (time.Duration, error) {
	var err error
	if e := f.cookieErr.Load(); e != nil {
		err = *e
	}
	return time.Duration(f.age.Load()), err
}

func (f *fakeVault) TokenHealth(context.Context) error {
	if e := f.tokenErr.Load(); e != nil {
		return *e
	}
	return nil
}

// TestWatchVault: the cookies and vault-token probes report the store's
// health, and the cookie age gauge follows the cookies probe.
func TestWatchVault(t *testing.T) {
	m := NewMetrics("test")
	s := New("127.0.0.1:0", m, nil)
	v := &fakeVault{}
	v.age.Store(int64(42 * time.Second))
	ce := fmt.Errorf("%w and the cached cookie for cluster %q was last confirmed 1h1m0s ago, past the stale limit of 1h0m0s", cookies.ErrVaultUnreachable, "prismatic")
	v.cookieErr.Store(&ce)
	s.WatchVault(v, time.Second)
	base := startServer(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for {
		f := s.Failing()
		if len(f) == 1 && strings.HasPrefix(f[0], "cookies: cookies: Vault is unreachable and the cached cookie for cluster \"prismatic\"") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cookies probe: %q", f)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v, ok := find(scrape(t, base), "beamgate_cookie_age_seconds"); !ok || v != 42 {
		t.Errorf("cookie age gauge: %v %v", v, ok)
	}
}

// TestNilMetrics: a nil *Metrics (ops listener off) does nothing.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.IncReload(true)
	m.ObserveVault(time.Second)
	m.SetCookieAge(nil)
	m.SetRevocationAge(nil)
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
}

// BenchmarkMetricsSinkMessage is what MetricsSink adds to one relayed
// message's audit append (the next sink does nothing here).
func BenchmarkMetricsSinkMessage(b *testing.B) {
	ms := NewMetricsSink(&testSink{}, NewMetrics("bench"))
	rec := &audit.Record{Event: audit.EventMessage, Decision: audit.DecisionAllow, Rule: "process.info", User: "u", Session: "s"}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ms.Append(ctx, rec)
		}
	})
}
