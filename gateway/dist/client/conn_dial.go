package client

import (
	"context"
	"fmt"
	"net"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/handshake"
)

// DialConn is Dial over a connection the caller already opened to the
// target's distribution listener, such as an SSH direct-tcpip channel
// through beamgate. cfg.EpmdAddr and cfg.DistAddr are ignored. DialConn
// owns nc from the start: it closes nc when the handshake fails, and the
// returned Conn closes it on Close. nc must support deadlines (the
// handshake and the tick timeout use them).
func DialConn(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	if err := handshake.CheckNodeName(cfg.Node); err != nil {
		nc.Close()
		return nil, fmt.Errorf("client: our node name: %w", err)
	}
	if err := handshake.CheckNodeName(cfg.Target); err != nil {
		nc.Close()
		return nil, fmt.Errorf("client: target: %w", err)
	}
	if cfg.Creation == 0 {
		cfg.Creation = randomUint32() | 1
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.NetTicktime <= 0 {
		cfg.NetTicktime = dist.DefaultNetTicktime
	}
	res, err := handshake.Initiate(ctx, nc, handshake.InitiatorConfig{
		Name:     cfg.Node,
		Creation: cfg.Creation,
		Flags:    handshake.ClientFlags &^ handshake.Published,
		Cookie:   cfg.Cookie,
		PeerName: cfg.Target,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("client: handshake with %s: %w", cfg.Target, err)
	}
	connCtx, cancel := context.WithCancelCause(context.Background())
	c := &Conn{
		cfg:     cfg,
		nc:      nc,
		fw:      dist.NewFrameWriter(nc),
		flags:   res.Flags,
		refSalt: randomUint32(),
		ctx:     connCtx,
		cancel:  cancel,
		pending: make(map[string]*call),
	}
	c.wg.Add(2)
	go c.readLoop()
	go c.tickLoop()
	return c, nil
}
