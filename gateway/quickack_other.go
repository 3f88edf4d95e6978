//go:build !linux

package gateway

import "net"

type quickAckConn struct{ net.Conn }

func withQuickAck(c net.Conn) net.Conn { return c }

func (c *quickAckConn) loggedIn() {}
