package gateway

import (
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// noQuickAck turns it off, for make bench-login's comparison.
var noQuickAck = os.Getenv("BEAMGATE_NO_QUICKACK") == "1"

// quickAckConn asks the kernel to acknowledge every segment at once
// (TCP_QUICKACK) while the connection is logging in. OpenSSH's client
// leaves Nagle on until a session starts and sends some handshake
// messages back to back; the second then waits for the first's ACK,
// which Linux delays by 40 ms while the gateway has nothing to answer.
// Twice per login, that was two thirds of an `ssh bastion cookie`.
// TCP_QUICKACK does not stick (the kernel may fall back to delayed ACKs
// at any time), so it is set again before each read.
type quickAckConn struct {
	net.Conn
	raw  syscall.RawConn
	done atomic.Bool // logged in: reads go on as usual
}

func withQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || noQuickAck {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{Conn: c, raw: raw}
}

func (c *quickAckConn) Read(b []byte) (int, error) {
	if !c.done.Load() {
		c.raw.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
	return c.Conn.Read(b)
}

// loggedIn stops setting TCP_QUICKACK.
func (c *quickAckConn) loggedIn() { c.done.Store(true) }
