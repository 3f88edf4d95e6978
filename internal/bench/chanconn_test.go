package bench

import (
	"net"
	"os"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// channelConn is a direct-tcpip channel as a net.Conn with deadlines, which
// x/crypto/ssh's own channel conn lacks and the hidden-node client needs.
// A deadline that passes closes the channel: every user of deadlines here
// (handshake, tick timeout) gives the connection up at that point anyway.
type channelConn struct {
	gossh.Channel
	local, remote net.Addr

	mu      sync.Mutex
	timers  [2]*time.Timer // read, write
	expired bool
}

func (c *channelConn) LocalAddr() net.Addr  { return c.local }
func (c *channelConn) RemoteAddr() net.Addr { return c.remote }

func (c *channelConn) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	return n, c.deadlineErr(err)
}

func (c *channelConn) Write(p []byte) (int, error) {
	n, err := c.Channel.Write(p)
	return n, c.deadlineErr(err)
}

func (c *channelConn) deadlineErr(err error) error {
	if err == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expired {
		return os.ErrDeadlineExceeded
	}
	return err
}

func (c *channelConn) SetDeadline(t time.Time) error {
	c.setDeadline(0, t)
	c.setDeadline(1, t)
	return nil
}

func (c *channelConn) SetReadDeadline(t time.Time) error  { c.setDeadline(0, t); return nil }
func (c *channelConn) SetWriteDeadline(t time.Time) error { c.setDeadline(1, t); return nil }

func (c *channelConn) setDeadline(i int, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timers[i] != nil {
		c.timers[i].Stop()
		c.timers[i] = nil
	}
	if t.IsZero() || c.expired {
		return
	}
	c.timers[i] = time.AfterFunc(time.Until(t), c.expire)
}

func (c *channelConn) expire() {
	c.mu.Lock()
	c.expired = true
	c.mu.Unlock()
	c.Channel.Close()
}

// directTCPIP is the RFC 4254 §7.2 payload of a direct-tcpip channel open.
type directTCPIP struct {
	DestAddr   string
	DestPort   uint32
	OriginAddr string
	OriginPort uint32
}

// dialChannel opens a direct-tcpip channel to host:port over sc, as
// `ssh -L` does for each local connection.
func dialChannel(sc *gossh.Client, host string, port int) (net.Conn, error) {
	payload := gossh.Marshal(directTCPIP{DestAddr: host, DestPort: uint32(port), OriginAddr: "127.0.0.1", OriginPort: 40000})
	ch, reqs, err := sc.OpenChannel("direct-tcpip", payload)
	if err != nil {
		return nil, err
	}
	go gossh.DiscardRequests(reqs)
	return &channelConn{Channel: ch, local: sc.LocalAddr(),
		remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}, nil
}
