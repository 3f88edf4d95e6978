package beamtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EpmdAddresses are the loopback addresses StartEpmd listens on: the ones
// test nodes bind to, so a long node name resolving to any of them finds
// this epmd.
var EpmdAddresses = []string{
	"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4",
	"127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8",
}

const (
	epmdStartAttempts = 5
	epmdReadyTimeout  = 10 * time.Second
	epmdNamesReq      = 110 // EPMD NAMES_REQ
)

// StartEpmd runs a private epmd in the foreground on a free port, listening
// on EpmdAddresses, waits until it answers a NAMES request, and kills it in
// t.Cleanup. Nodes find it through Options.EpmdPort (ERL_EPMD_PORT).
func StartEpmd(t testing.TB) (port int) {
	t.Helper()
	return StartEpmdOn(t, EpmdAddresses...)
}

// StartEpmdOn is StartEpmd on the given IPv4 addresses (epmd always adds
// 127.0.0.1 itself).
func StartEpmdOn(t testing.TB, ips ...string) (port int) {
	t.Helper()
	RequireErl(t)
	if len(ips) == 0 {
		ips = []string{"127.0.0.1"}
	}
	var lastErr error
	for range epmdStartAttempts {
		port = FreePortOn(t, ips...)
		err := startEpmdOnce(t, port, ips)
		if err == nil {
			return port
		}
		lastErr = err // most likely the port was taken meanwhile; pick another
	}
	t.Fatalf("beamtest: epmd did not start after %d attempts: %v", epmdStartAttempts, lastErr)
	return 0
}

func startEpmdOnce(t testing.TB, port int, ips []string) error {
	var out bytes.Buffer
	cmd := exec.Command("epmd", "-port", strconv.Itoa(port), "-address", strings.Join(ips, ","))
	cmd.Stdout = &out // read only after Wait returned
	cmd.Stderr = &out
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start epmd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	stop := func() {
		killGroup(cmd.Process)
		select {
		case <-exited:
		case <-time.After(epmdReadyTimeout):
			t.Logf("beamtest: epmd pid %d did not exit after SIGKILL", cmd.Process.Pid)
		}
	}

	deadline := time.Now().Add(epmdReadyTimeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("epmd on port %d exited early (%v): %s", port, err, strings.TrimSpace(out.String()))
		default:
		}
		err := epmdNames(port)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("epmd on port %d not answering: %w", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(stop)
	return nil
}

// epmdNames sends NAMES_REQ to the epmd on 127.0.0.1:port and checks the
// reply starts with that port.
func epmdNames(port int) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{0, 1, epmdNamesReq}); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	if got := binary.BigEndian.Uint32(hdr[:]); got != uint32(port) {
		return fmt.Errorf("NAMES reply carries port %d, want %d", got, port)
	}
	return nil
}
