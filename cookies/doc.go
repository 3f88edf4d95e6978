// Package cookies owns beamgate's Erlang cookies: production cookies (file
// backend now, Vault later), caching, and per-user gateway cookies.
//
// A production cookie authenticates beamgate to a production node and is
// never shown to an engineer or written to a log. A gateway cookie is what
// an engineer's node presents to beamgate: an HMAC of a gateway secret over
// the user name and a time window, so every SSH connection and every
// replica derives the same value without shared state.
package cookies
