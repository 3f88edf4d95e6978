//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// listenNotify stands in for systemd: a unixgram socket at name (a path,
// or "@..." for the abstract namespace), with NOTIFY_SOCKET pointing at it.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return c
}

// recvNotify reads one datagram, as systemd does.
func recvNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification arrived: %v", err)
	}
	return string(buf[:n])
}

func TestSdNotifyPathSocket(t *testing.T) {
	c := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	for _, state := range []string{"READY=1", "STATUS=serving on 127.0.0.1:2222", "WATCHDOG=1", sdReloading(), "STOPPING=1"} {
		if err := sdNotify(state); err != nil {
			t.Fatalf("sdNotify(%q): %v", state, err)
		}
		if got := recvNotify(t, c); got != state {
			t.Errorf("systemd got %q, want %q", got, state)
		}
	}
}

func TestSdNotifyAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@beamgate-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	c := listenNotify(t, name)
	// The socket really is abstract: no file of that name appeared.
	if _, err := os.Lstat(name); err == nil {
		t.Fatalf("a file %q exists: the socket is not in the abstract namespace", name)
	}
	if err := sdNotify("READY=1\nSTATUS=ready"); err != nil {
		t.Fatal(err)
	}
	if got := recvNotify(t, c); got != "READY=1\nSTATUS=ready" {
		t.Errorf("systemd got %q", got)
	}
}

func TestSdNotifyUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET") // t.Setenv restores it afterwards
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("sdNotify without NOTIFY_SOCKET: %v, want nil", err)
	}
}

func TestSdNotifyErrors(t *testing.T) {
	// Nothing listens there: the error is reported, not swallowed.
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if err := sdNotify("READY=1"); err == nil {
		t.Error("sdNotify to a socket nobody listens on: nil error")
	}
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if err := sdNotify("READY=1"); err == nil || !strings.Contains(err.Error(), "vsock:2:1234") {
		t.Errorf("sdNotify to a vsock address: %v, want an error naming it", err)
	}
}

func TestSdWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		unsetPID  bool
		want      time.Duration
	}{
		{usec: "20000000", unsetPID: true, want: 10 * time.Second},
		{usec: "20000000", pid: me, want: 10 * time.Second},
		{usec: "3000", pid: me, want: 1500 * time.Microsecond},
		{usec: "20000000", pid: strconv.Itoa(os.Getpid() + 1), want: 0}, // another process's watchdog
		{usec: "20000000", pid: "x", want: 0},
		{usec: "", unsetPID: true, want: 0},
		{usec: "0", pid: me, want: 0},
		{usec: "-5", pid: me, want: 0},
		{usec: "abc", pid: me, want: 0},
		{usec: "9223372036854775807", pid: me, want: time.Duration(maxWatchdogUsec) * time.Microsecond / 2}, // clamped, no overflow
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		if tc.unsetPID {
			os.Unsetenv("WATCHDOG_PID")
		}
		if got := sdWatchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q (unset %v): %v, want %v", tc.usec, tc.pid, tc.unsetPID, got, tc.want)
		}
	}
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	if got := sdWatchdogInterval(); got != 0 {
		t.Errorf("no watchdog variables: %v, want 0", got)
	}
}

// clockMonotonicUsec reads CLOCK_MONOTONIC through the syscall, the clock
// systemd compares MONOTONIC_USEC with.
func clockMonotonicUsec(t *testing.T) int64 {
	t.Helper()
	var ts syscall.Timespec
	const clockMonotonic = 1
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		t.Fatal(errno)
	}
	return ts.Nano() / 1e3
}

func TestSdReloading(t *testing.T) {
	before := clockMonotonicUsec(t)
	msg := sdReloading()
	after := clockMonotonicUsec(t)
	v, ok := strings.CutPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=")
	if !ok {
		t.Fatalf("sdReloading() = %q, want RELOADING=1 then MONOTONIC_USEC=", msg)
	}
	usec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("sdReloading() = %q: MONOTONIC_USEC is not a number: %v", msg, err)
	}
	if usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d, not between the CLOCK_MONOTONIC readings %d and %d around it", usec, before, after)
	}
}
