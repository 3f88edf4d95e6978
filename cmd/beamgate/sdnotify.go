package main

// A minimal sd_notify(3) client, without libsystemd or a Go library: one
// datagram per call to the unix socket systemd names in $NOTIFY_SOCKET
// (Type=notify units; see deploy/systemd/beamgate.service). A name
// starting with '@' is in the abstract namespace; Go's net package turns
// the '@' into the leading NUL byte the kernel expects.

import (
	"errors"
	"math"
	"net"
	"os"
	"strconv"
	"time"
	_ "unsafe" // go:linkname runtimeNanotime
)

// sdNotify sends state (e.g. "READY=1", "RELOADING=1\nMONOTONIC_USEC=…", "STOPPING=1", "WATCHDOG=1", "STATUS=…") to systemd; a no-op returning nil when NOTIFY_SOCKET is unset.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		// systemd 254+ may also hand out vsock:CID:PORT (for VMs); a
		// gateway on a host never gets one.
		return errors.New("sd_notify: NOTIFY_SOCKET " + strconv.Quote(name) + " is neither a path nor an abstract socket name")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	// systemd reads at most one datagram per message; a short write would
	// be an error from WriteMsgUnix, not a partial message.
	_, err = c.Write([]byte(state))
	return err
}

// maxWatchdogUsec is the longest WATCHDOG_USEC a time.Duration holds.
const maxWatchdogUsec = uint64(math.MaxInt64 / int64(time.Microsecond))

// sdWatchdogInterval is half of WATCHDOG_USEC when WATCHDOG_PID is unset or ours, else 0.
func sdWatchdogInterval() time.Duration {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil || pid != os.Getpid() {
			return 0 // meant for another process (a parent that exec'd us)
		}
	}
	if usec > maxWatchdogUsec {
		usec = maxWatchdogUsec // no overflow below
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// sdReloading is the RELOADING=1 message with MONOTONIC_USEC (systemd 253+ wants it; older ignore it).
func sdReloading() string {
	// systemd compares MONOTONIC_USEC with its own CLOCK_MONOTONIC reading
	// of when it sent the reload signal, to tell this reload from an older
	// one.
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(runtimeNanotime()/1e3, 10)
}

// runtimeNanotime is the Go runtime's monotonic clock, CLOCK_MONOTONIC on
// Linux (the clock systemd means by MONOTONIC_USEC). The time package
// shows only its difference from process start; the syscall package has
// no clock_gettime that builds on every OS. runtime.nanotime is one of the
// symbols the runtime keeps open to go:linkname (go.dev/issue/67401).
//
//go:linkname runtimeNanotime runtime.nanotime
func runtimeNanotime() int64
