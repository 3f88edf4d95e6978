package beamtest

import (
	"net"
	"testing"
	"time"
)

// ListenTimeout bounds WaitListening.
const ListenTimeout = 30 * time.Second

// WaitListening waits, at most ListenTimeout, until addr ("host:port")
// accepts a TCP connection. exited, when not nil, is closed when the
// process that should serve addr has exited: WaitListening then fails at
// once instead of waiting out the deadline. output, when not nil, returns
// that process's output for the failure message.
func WaitListening(t testing.TB, addr string, exited <-chan struct{}, output func() string) {
	t.Helper()
	out := func() string {
		if output == nil {
			return ""
		}
		return output()
	}
	deadline := time.Now().Add(ListenTimeout)
	for {
		select {
		case <-exited: // a nil channel never fires
			t.Fatalf("beamtest: the process serving %s exited before it listened:\n%s", addr, out())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("beamtest: nothing listening on %s after %v: %v\n%s", addr, ListenTimeout, err, out())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
