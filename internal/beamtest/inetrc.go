package beamtest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Production host names and addresses used by the fixtures. A production
// node is named "prod@" + ProductionHost and binds ProductionIP; a second
// node uses ProductionHost2 on ProductionIP2.
const (
	ProductionHost  = "prod-01.beamgate.test"
	ProductionIP    = "127.0.0.2"
	ProductionHost2 = "prod-02.beamgate.test"
	ProductionIP2   = "127.0.0.3"
)

// WriteInetrc writes an Erlang inetrc file mapping each hostname to its IPv4
// address, with lookup order [file, native], and returns its path. Pass it
// as Options.Inetrc (ERL_INETRC) so inet:gethostbyname and long-name
// distribution resolve the test hostnames without touching /etc/hosts.
func WriteInetrc(t testing.TB, hosts map[string]string) (path string) {
	t.Helper()
	names := make([]string, 0, len(hosts))
	for name := range hosts {
		names = append(names, name)
	}
	slices.Sort(names)

	var b strings.Builder
	for _, name := range names {
		ip := net.ParseIP(hosts[name]).To4()
		if ip == nil {
			t.Fatalf("beamtest: inetrc: %q is not an IPv4 address (host %q)", hosts[name], name)
		}
		if !validHostname(name) {
			t.Fatalf("beamtest: inetrc: invalid hostname %q", name)
		}
		fmt.Fprintf(&b, "{host, {%d,%d,%d,%d}, [%q]}.\n", ip[0], ip[1], ip[2], ip[3], name)
	}
	b.WriteString("{lookup, [file, native]}.\n")

	path = filepath.Join(t.TempDir(), "inetrc")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("beamtest: write inetrc: %v", err)
	}
	return path
}

// validHostname reports whether name is made of the characters a DNS name
// may hold, so it can be written inside an Erlang string without escaping.
func validHostname(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}
