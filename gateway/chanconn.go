package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// channelConn adapts an accepted SSH channel to net.Conn for the epmd face
// and the relay. Deadlines are timers: when one passes, the channel is
// closed and the blocked or next Read/Write returns an error that is a
// timeout (os.ErrDeadlineExceeded). A passed deadline therefore ends the
// channel; it cannot be extended afterwards. Close sends CHANNEL_CLOSE so
// the engineer's ssh client closes its local socket.
type channelConn struct {
	ch     gossh.Channel
	local  net.Addr
	remote net.Addr

	closeOnce sync.Once
	closed    atomic.Bool
	rExpired  atomic.Bool
	wExpired  atomic.Bool
	onClose   func()
	// abort closes the whole SSH connection: the way out when the client
	// is frozen (a stopped ssh). x/crypto wakes a Write blocked on the
	// channel's window, and a Read waiting for data, only on the peer's
	// CHANNEL_CLOSE, which a frozen client never sends. writing and
	// reading count the Writes and Reads in progress.
	abort   func()
	writing atomic.Int32
	reading atomic.Int32

	mu     sync.Mutex
	rTimer *time.Timer
	wTimer *time.Timer
}

func newChannelConn(ch gossh.Channel, local, remote net.Addr, onClose func()) *channelConn {
	return &channelConn{ch: ch, local: local, remote: remote, onClose: onClose}
}

// timeoutError is returned after a deadline passed.
type timeoutError struct{}

func (timeoutError) Error() string        { return "ssh channel: i/o timeout" }
func (timeoutError) Timeout() bool        { return true }
func (timeoutError) Temporary() bool      { return true }
func (timeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

func (c *channelConn) Read(b []byte) (int, error) {
	if c.rExpired.Load() {
		return 0, timeoutError{}
	}
	c.reading.Add(1)
	n, err := c.ch.Read(b)
	c.reading.Add(-1)
	if err != nil {
		switch {
		case c.rExpired.Load():
			err = timeoutError{}
		case c.closed.Load():
			err = net.ErrClosed
		}
	}
	return n, err
}

func (c *channelConn) Write(b []byte) (int, error) {
	if c.wExpired.Load() {
		return 0, timeoutError{}
	}
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	c.writing.Add(1)
	n, err := c.ch.Write(b)
	c.writing.Add(-1)
	if err != nil {
		switch {
		case c.wExpired.Load():
			err = timeoutError{}
		case c.closed.Load():
			err = net.ErrClosed
		case errors.Is(err, io.EOF):
			err = io.ErrClosedPipe
		}
	}
	return n, err
}

// stuckClose is how long Close waits for blocked Writes to give up before
// it closes the whole SSH connection (abort).
const stuckClose = 2 * time.Second

// Close closes the channel (CHANNEL_CLOSE, not just EOF). It is idempotent.
// A Write or Read still blocked stuckClose later (the client did not
// answer the CHANNEL_CLOSE: it is frozen) makes it close the SSH
// connection, which frees them and whatever they hold.
func (c *channelConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.abort != nil {
			time.AfterFunc(stuckClose, func() {
				if c.writing.Load() > 0 || c.reading.Load() > 0 {
					c.abort()
				}
			})
		}
		c.mu.Lock()
		if c.rTimer != nil {
			c.rTimer.Stop()
		}
		if c.wTimer != nil {
			c.wTimer.Stop()
		}
		c.mu.Unlock()
		err = c.ch.Close()
		if errors.Is(err, io.EOF) {
			err = nil
		}
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// CloseWrite sends EOF on the channel.
func (c *channelConn) CloseWrite() error { return c.ch.CloseWrite() }

func (c *channelConn) LocalAddr() net.Addr  { return c.local }
func (c *channelConn) RemoteAddr() net.Addr { return c.remote }

func (c *channelConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *channelConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(&c.rTimer, &c.rExpired, t)
}

func (c *channelConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(&c.wTimer, &c.wExpired, t)
}

func (c *channelConn) setDeadline(timer **time.Timer, expired *atomic.Bool, t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if *timer != nil {
		(*timer).Stop()
		*timer = nil
	}
	if expired.Load() {
		return nil // the channel is already closed by an earlier deadline
	}
	if t.IsZero() {
		return nil
	}
	expire := func() {
		expired.Store(true)
		c.ch.Close()
	}
	d := time.Until(t)
	if d <= 0 {
		expire()
		return nil
	}
	*timer = time.AfterFunc(d, expire)
	return nil
}

// channelAddr names one end of a direct-tcpip channel.
type channelAddr struct{ hostport string }

func (a channelAddr) Network() string { return "ssh-direct-tcpip" }
func (a channelAddr) String() string  { return a.hostport }
