// Package beamtest owns the real-BEAM test harness: it runs private epmd
// daemons and real Erlang or Elixir nodes on loopback addresses, drives them
// through a stdin/stdout evaluation agent, and installs a production fixture
// whose state tests compare before and after an engineer's session.
//
// Everything it starts is tied to the calling test: processes run in their
// own process group, die with the test binary (Linux parent-death signal and
// agent halt on stdin EOF), and are stopped in t.Cleanup.
package beamtest

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// missingErlMsg is the skip (or, under CI, failure) message when erl is absent.
const missingErlMsg = "erl not found: install Debian package erlang-base (see .ci/run)"

// missingElixirMsg is the skip (or, under CI, failure) message when elixir is absent.
const missingElixirMsg = "elixir not found: install Debian package elixir (see .ci/run)"

// RequireErl skips the test when erl, erlc or epmd is not on PATH. When the
// environment variable CI is "true" it fails instead: CI must never silently
// skip the real-node tests.
func RequireErl(t testing.TB) {
	t.Helper()
	requireBinaries(t, missingErlMsg, "erl", "epmd")
}

// RequireElixir is RequireErl plus the elixir launcher.
func RequireElixir(t testing.TB) {
	t.Helper()
	RequireErl(t)
	requireBinaries(t, missingElixirMsg, "elixir")
}

func requireBinaries(t testing.TB, msg string, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s (%s: %v)", msg, name, err)
			}
			t.Skipf("%s (%s: %v)", msg, name, err)
		}
	}
}

// FreePort returns a TCP port that was free on ip a moment ago. Another
// process may still take it before the caller binds it; callers that start
// servers on it should be ready to retry.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("beamtest: free port on %s: %v", ip, err)
	}
	defer ln.Close()
	_, portStr, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatalf("beamtest: free port on %s: %v", ip, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("beamtest: free port on %s: %v", ip, err)
	}
	return port
}
