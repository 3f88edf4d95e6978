// Package dist owns the Erlang distribution protocol after the handshake:
// the 4-byte-length framing with its zero-length ticks (frame.go), and the
// control messages as one Go type per operation (control.go and the
// control_*.go files), with DecodeFrame/AppendMessage tying the two together.
//
// The gateway masks DIST_HDR_ATOM_CACHE and FRAGMENTS during the handshake,
// so every non-tick frame has the pass-through layout
//
//	112 ('p') | 131 <control tuple> | [131 <payload>]
//
// (docs/wire.md#frame-layout). Frames carrying a distribution header
// (131 68) or fragments (131 69, 131 70) come from a misbehaving peer and are
// refused. Everything read here may come from an untrusted engineer node:
// lengths are bounded before anything is allocated and every decoder returns
// typed errors instead of panicking.
//
// The term codec lives in package term, the handshake in package handshake,
// and a hidden-node client for calling into production in package client.
package dist
