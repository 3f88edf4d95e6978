package epmd

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// DefaultClientTimeout bounds a whole client exchange (dial, request,
// response) when the context has no earlier deadline. OTP's own client
// waits 10 s for PORT2_RESP.
const DefaultClientTimeout = 10 * time.Second

// The distribution versions beamgate speaks.
const (
	minDistVersion = 5
	maxDistVersion = 6
)

// LookupPort asks the epmd at addr (host:port) where the node with the
// given alive name listens. It returns an error matching ErrNotFound when
// epmd does not know the node, and ErrVersionMismatch when the node's
// version range does not overlap 5..6.
func LookupPort(ctx context.Context, addr string, alive string) (port int, err error) {
	req := &PortPlease2Req{Name: alive}
	var resp *Port2Resp
	err = exchange(ctx, addr, req, func(r io.Reader) (err error) {
		resp, err = ReadPort2Resp(r)
		return err
	})
	if err != nil {
		return 0, err
	}
	switch {
	case resp.Result != 0:
		return 0, fmt.Errorf("%w: %q (result %d)", ErrNotFound, alive, resp.Result)
	case resp.LowestVersion > maxDistVersion || resp.HighestVersion < minDistVersion:
		return 0, fmt.Errorf("%w: %q speaks %d..%d", ErrVersionMismatch, alive, resp.LowestVersion, resp.HighestVersion)
	case resp.Name != alive:
		return 0, malformed("PORT2_RESP", fmt.Sprintf("answer names %q, asked for %q", resp.Name, alive))
	}
	return int(resp.PortNo), nil
}

// ListNames asks the epmd at addr (host:port) for its registered nodes.
func ListNames(ctx context.Context, addr string) ([]NameEntry, error) {
	var resp *NamesResp
	err := exchange(ctx, addr, &NamesReq{}, func(r io.Reader) (err error) {
		resp, err = ReadNamesResp(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Entries, nil
}

// exchange dials addr, sends req and lets read consume the answer until
// epmd closes, all within ctx and DefaultClientTimeout.
func exchange(ctx context.Context, addr string, req Request, read func(io.Reader) error) error {
	msg, err := req.Encode(nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultClientTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("epmd: dial %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return fmt.Errorf("epmd: %s: %w", addr, err)
		}
	}
	if _, err := conn.Write(msg); err != nil {
		return clientErr(ctx, addr, req, err)
	}
	if err := read(conn); err != nil {
		return clientErr(ctx, addr, req, err)
	}
	return nil
}

func clientErr(ctx context.Context, addr string, req Request, err error) error {
	if ctxErr := context.Cause(ctx); ctxErr != nil {
		err = ctxErr
	}
	return fmt.Errorf("epmd: %v to %s: %w", req, addr, err)
}

// Addr turns a node's configured dial target, a host or host:port, into
// the address of its epmd (DefaultPort when no port is given) and the host
// its distribution port lives on. A bare IPv6 host may be bracketed or not.
func Addr(dial string) (addr, host string) {
	if h, _, err := net.SplitHostPort(dial); err == nil {
		return dial, h
	}
	host = strings.Trim(dial, "[]")
	return net.JoinHostPort(host, strconv.Itoa(DefaultPort)), host
}
