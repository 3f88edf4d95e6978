package gateway

import (
	"beamgate/gateway/config"
	"bytes"
	"strings"
	"testing"
)

func TestHasFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		name string
		want bool
	}{
		{[]string{"--watch", "2s"}, "watch", true},
		{[]string{"-watch=2s"}, "watch", true},
		{[]string{"--watch=1s", "--json"}, "json", true},
		{[]string{"-n", "10"}, "watch", false},
		{[]string{"--watchful"}, "watch", false},
		{[]string{"--", "--watch"}, "watch", false},
		{nil, "watch", false},
	} {
		if got := hasFlag(c.args, c.name); got != c.want {
			t.Errorf("hasFlag(%q, %q) = %v, want %v", c.args, c.name, got, c.want)
		}
	}
}

func TestCRLFWriter(t *testing.T) {
	var b bytes.Buffer
	w := &crlfWriter{w: &b}
	n, err := w.Write([]byte("a\nb\n"))
	if err != nil || n != 4 || b.String() != "a\r\nb\r\n" {
		t.Errorf("Write = %d, %v, %q", n, err, b.String())
	}
}

func TestScrubCookies(t *testing.T) {
	got := scrubCookies("handshake with COOKIE1 failed, then COOKIE2", []string{"COOKIE1", "", "COOKIE2"})
	if got != "handshake with [cookie] failed, then [cookie]" {
		t.Errorf("scrubCookies = %q", got)
	}
}

func TestViewNodeName(t *testing.T) {
	a, b := viewNodeName("bastion"), viewNodeName("bastion")
	if a == b || len(a) != len("beamgate_view_")+12+len("@bastion") {
		t.Errorf("viewNodeName = %q, %q", a, b)
	}
	if h := defaultViewHost(); !config.ValidHost(h) {
		t.Errorf("defaultViewHost = %q", h)
	}
}

// TestViewsOffWithoutCookieSource: a gateway whose relay offers no
// production cookie source refuses views, naming the rule, and audits the
// refusal.
func TestViewsOffWithoutCookieSource(t *testing.T) {
	e := startGateway(t, envOptions{})
	r := e.ssh("alice", e.aliceK, nil, "stats", "prismatic@prod-01")
	if r.code != 1 || !strings.Contains(r.stderr, "view.unavailable") {
		t.Errorf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	e.waitAudit(`"event":"command"`, `"op":"stats prismatic@prod-01"`, `"rule":"view.unavailable"`)
}
