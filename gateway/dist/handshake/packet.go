package handshake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// MaxPacket bounds a handshake packet body. The largest legitimate one is
// a challenge with a MaxNameLen name (1042 bytes).
const MaxPacket = 2048

// ReadPacket reads one handshake packet (2-byte big-endian length, then
// the body) and returns the body, stored in buf when it fits. It reads
// exactly the packet and nothing more, so bytes the peer sends after the
// handshake stay in r. A zero length is ErrEmptyPacket, a length over
// MaxPacket a *PacketTooLargeError (checked before reading the body); a
// packet cut short is io.ErrUnexpectedEOF.
func ReadPacket(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	switch {
	case n == 0:
		return nil, ErrEmptyPacket
	case n > MaxPacket:
		return nil, &PacketTooLargeError{Len: n}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// WritePacket writes body with its 2-byte length prefix in one Write.
func WritePacket(w io.Writer, body []byte) error {
	switch {
	case len(body) == 0:
		return ErrEmptyPacket
	case len(body) > MaxPacket:
		return &PacketTooLargeError{Len: len(body)}
	}
	pkt := make([]byte, 2, 2+len(body))
	binary.BigEndian.PutUint16(pkt, uint16(len(body)))
	_, err := w.Write(append(pkt, body...))
	return err
}

// Conn carries handshake messages over a net.Conn with 2-byte framing.
// It never reads past the current packet. Not safe for concurrent use.
type Conn struct {
	nc  net.Conn
	buf [MaxPacket]byte
}

// NewConn returns a Conn over nc.
func NewConn(nc net.Conn) *Conn { return &Conn{nc: nc} }

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// SetDeadline sets the read and write deadline of the underlying
// connection, which bounds every following Send and Recv; the zero time
// means none.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// Recv reads the next packet within the connection's deadline and decodes
// it as m, the kind of message expected next. I/O errors name the expected
// message.
func (c *Conn) Recv(m Message) error {
	body, err := ReadPacket(c.nc, c.buf[:])
	if err != nil {
		return fmt.Errorf("handshake: reading %s: %w", m.kind(), err)
	}
	// Decode errors are already typed and prefixed; keep them as they are.
	return m.Decode(body)
}

// Send encodes m and writes it as one packet within the connection's
// deadline.
func (c *Conn) Send(m Message) error {
	if err := WritePacket(c.nc, m.Encode(c.buf[:0])); err != nil {
		return fmt.Errorf("handshake: sending %s: %w", m.kind(), err)
	}
	return nil
}
