// Package epmd owns beamgate's side of the Erlang Port Mapper Daemon
// protocol: the request and response messages (one type per message, each
// with Decode/Encode), the gateway's epmd face that answers an engineer's
// node locally, and a small client that asks a real epmd where a
// production node listens.
//
// Requests are framed by a 2-byte big-endian length; responses are not
// framed. Everything read from the network is bounded before it is
// allocated, and unknown or malformed input is rejected with typed errors.
// What the face answers is described in docs/wire.md#epmd; the wire
// format itself is erts/doc/guides/erl_dist_protocol.md upstream.
package epmd
