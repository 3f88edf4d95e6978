package client

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/gateway/dist/term"
	"beamgate/internal/beamtest"
)

const (
	testCookie = "client-test-cookie"
	prodName   = "prod@127.0.0.2"
	clientName = "beamgate_rot_x@127.0.0.5"
)

// startProd runs a private epmd and a production node registered in it.
func startProd(t *testing.T) (prod *beamtest.Production, epmdAddr string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real BEAM nodes")
	}
	port := beamtest.StartEpmd(t)
	prod = beamtest.StartProduction(t, beamtest.Options{Name: prodName, LongNames: true,
		Cookie: testCookie, BindIP: "127.0.0.2", EpmdPort: port})
	return prod, "127.0.0.2:" + strconv.Itoa(port)
}

func dial(t *testing.T, cfg Config) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func callProd(t *testing.T, c *Conn, m, f term.Atom, args ...term.Term) (term.Term, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return c.Call(ctx, m, f, args)
}

func TestCallRealProduction(t *testing.T) {
	prod, epmdAddr := startProd(t)
	c := dial(t, Config{Node: clientName, Target: prodName, EpmdAddr: epmdAddr, Cookie: testCookie,
		Logf: t.Logf})

	if v, err := callProd(t, c, "erlang", "node"); err != nil || v != term.Atom(prodName) {
		t.Errorf("erlang:node() = %v, %v; want %s", v, err, prodName)
	}
	if v, err := callProd(t, c, "erlang", "system_info", term.Atom("otp_release")); err != nil ||
		!term.Equal(v, term.String("25")) {
		t.Errorf("erlang:system_info(otp_release) = %v, %v", v, err)
	}
	if v, err := callProd(t, c, "ets", "info", term.Atom(beamtest.OrdersTable), term.Atom("size")); err != nil ||
		v != term.Int(len(beamtest.InitialOrders)) {
		t.Errorf("ets:info(orders, size) = %v, %v", v, err)
	}

	// Exceptions of each class come back as *RemoteError.
	for _, tt := range []struct {
		f     term.Atom
		class term.Atom
	}{{"error", "error"}, {"throw", "throw"}, {"exit", "exit"}} {
		_, err := callProd(t, c, "erlang", tt.f, term.Atom("boom"))
		var re *RemoteError
		if !errors.As(err, &re) || re.Class != tt.class || re.Reason != term.Atom("boom") {
			t.Errorf("erlang:%s(boom) error = %v, want %s:boom", tt.f, err, tt.class)
		}
	}
	_, err := callProd(t, c, "no_such_module", "f")
	if re := (*RemoteError)(nil); !errors.As(err, &re) || re.Reason != term.Atom("undef") {
		t.Errorf("undefined function error = %v, want error:undef", err)
	}

	// The remote process's group leader is our pid: its io_request gets
	// {error, enotsup}, so io:format fails instead of hanging.
	_, err = callProd(t, c, "io", "format", term.String("hello~n"))
	if re := (*RemoteError)(nil); !errors.As(err, &re) || re.Class != "error" {
		t.Errorf("io:format through our group leader = %v, want a remote error", err)
	}

	// We are connected hidden.
	if got := prod.Eval(t, "lists:member('"+clientName+"', nodes(hidden))"); got != "true" {
		t.Errorf("nodes(hidden) lacks the client: %s", got)
	}
	if got := prod.Eval(t, "nodes()"); got != "[]" {
		t.Errorf("nodes() = %s, want [] (client must be hidden)", got)
	}
}

func TestCallDeadline(t *testing.T) {
	_, epmdAddr := startProd(t)
	c := dial(t, Config{Node: clientName, Target: prodName, EpmdAddr: epmdAddr, Cookie: testCookie})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, "timer", "sleep", []term.Term{term.Int(3000)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call past its deadline = %v", err)
	}
	if v, err := callProd(t, c, "erlang", "node"); err != nil || v != term.Atom(prodName) {
		t.Errorf("call after a timed-out one = %v, %v", v, err)
	}
	c.Close()
	if _, err := callProd(t, c, "erlang", "node"); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close = %v, want ErrClosed", err)
	}
}

func TestDialWrongCookie(t *testing.T) {
	_, epmdAddr := startProd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{Node: clientName, Target: prodName, EpmdAddr: epmdAddr, Cookie: "wrong"})
	if err == nil {
		c.Close()
		t.Fatal("Dial with a wrong cookie succeeded")
	}
	if !strings.Contains(err.Error(), "handshake") {
		t.Errorf("Dial error = %v", err)
	}
}

func TestDialBadNames(t *testing.T) {
	for _, cfg := range []Config{{Node: "nohost", Target: prodName}, {Node: clientName, Target: "prod"}} {
		if _, err := Dial(context.Background(), cfg); err == nil {
			t.Errorf("Dial(%+v) succeeded", cfg)
		}
	}
}

// TestIdleConnectionSurvives leaves the connection idle for longer than
// production's net_ticktime: only the ticks both ways keep it up.
func TestIdleConnectionSurvives(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real BEAM nodes")
	}
	port := beamtest.StartEpmd(t)
	prod := beamtest.Start(t, beamtest.Options{Name: prodName, LongNames: true, Cookie: testCookie,
		BindIP: "127.0.0.2", EpmdPort: port, ExtraArgs: []string{"-kernel", "net_ticktime", "2"}})
	c := dial(t, Config{Node: clientName, Target: prodName, EpmdAddr: "127.0.0.2:" + strconv.Itoa(port),
		Cookie: testCookie, NetTicktime: 2 * time.Second})
	select {
	case <-c.Done():
		t.Fatalf("connection died while idle: %v", c.Err())
	case <-time.After(5 * time.Second):
	}
	if v, err := callProd(t, c, "erlang", "node"); err != nil || v != term.Atom(prodName) {
		t.Errorf("call after idling = %v, %v", v, err)
	}
	if got := prod.Eval(t, "lists:member('"+clientName+"', nodes(hidden))"); got != "true" {
		t.Errorf("production dropped the idle client: nodes(hidden) lacks it")
	}
}
