// Package beamtest owns the real-BEAM test harness: it runs private epmd
// daemons and real Erlang or Elixir nodes on loopback addresses, drives them
// through a stdin/stdout evaluation agent, and installs a production fixture
// whose state tests compare before and after an engineer's session.
//
// Everything it starts is tied to the calling test: processes run in their
// own process group, die with the test binary (Linux parent-death signal and
// agent halt on stdin EOF), and are stopped in t.Cleanup.
//
// It also holds the small helpers the end-to-end tests of several packages
// share: free ports (FreePort, FreePortOn), waiting for a server to listen
// (WaitListening), OpenSSH keys and client options (NewSSHKey,
// SSHClientArgs), a real terminal (Tmux), building the beamgate binary
// (BuildBeamgate) and the OTP interop matrix table (Matrix).
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

// freePortAttempts bounds FreePortOn's search for a port free on every
// address.
const freePortAttempts = 50

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
// Another process may still take it before the caller binds it; callers
// that start servers on it should be ready to retry.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePortOn(t, "127.0.0.1")
}

// FreePortOn is FreePort on the given addresses: the port was free on
// every one of ips a moment ago (for a node and a forwarded end that must
// share a port number on different loopback addresses).
func FreePortOn(t testing.TB, ips ...string) int {
	t.Helper()
	if len(ips) == 0 {
		t.Fatalf("beamtest: FreePortOn needs at least one address")
	}
	for range freePortAttempts {
		port := listenPort(t, ips[0])
		if freeOnAll(port, ips[1:]) {
			return port
		}
	}
	t.Fatalf("beamtest: no port free on all of %v after %d attempts", ips, freePortAttempts)
	return 0
}

// listenPort returns a port the kernel just handed out on ip.
func listenPort(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("beamtest: free port on %s: %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeOnAll reports whether port can be bound on each of ips.
func freeOnAll(port int, ips []string) bool {
	for _, ip := range ips {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}
