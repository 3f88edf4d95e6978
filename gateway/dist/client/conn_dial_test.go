package client

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"beamgate/gateway/dist/term"
	"beamgate/gateway/epmd"
)

// TestDialConnOverOwnConn: DialConn runs the handshake on a connection the
// caller opened, and a wrong cookie closes that connection.
func TestDialConnOverOwnConn(t *testing.T) {
	_, epmdAddr := startProd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	port, err := epmd.LookupPort(ctx, epmdAddr, "prod")
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.2", strconv.Itoa(port))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := DialConn(ctx, nc, Config{Node: clientName, Target: prodName, Cookie: testCookie, Logf: t.Logf})
	if err != nil {
		t.Fatalf("DialConn: %v", err)
	}
	defer c.Close()
	if v, err := c.Call(ctx, "erlang", "node", nil); err != nil || v != term.Atom(prodName) {
		t.Fatalf("erlang:node() = %v, %v", v, err)
	}

	bad, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DialConn(ctx, bad, Config{Node: "other@127.0.0.5", Target: prodName, Cookie: "wrong"}); err == nil {
		t.Fatal("DialConn with a wrong cookie succeeded")
	}
	if _, err := bad.Write([]byte{0}); err == nil {
		t.Error("DialConn left the connection open after a failed handshake")
	}
}
