package gateway

import (
	"io"
	"net"
	"syscall"
	"testing"
)

// TestQuickAckConn: accepted TCP connections get TCP_QUICKACK before each
// read while logging in, and not once logged in; the bytes pass as they
// are.
func TestQuickAckConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Write([]byte("SSH-2.0-x\r\nmore"))
			c.Close()
		}
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := withQuickAck(raw).(*quickAckConn)
	if !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	defer c.Close()
	quick := func() int {
		v := -1
		c.raw.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK) })
		return v
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "SSH-" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if v := quick(); v != 1 {
		t.Errorf("TCP_QUICKACK = %d while logging in, want 1", v)
	}
	c.loggedIn()
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != "2.0-x\r\nmore" {
		t.Fatalf("read %q, %v", rest, err)
	}
	if _, ok := withQuickAck(&net.UnixConn{}).(*quickAckConn); ok {
		t.Error("a non-TCP connection was wrapped")
	}
}
