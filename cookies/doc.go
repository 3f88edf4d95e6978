// Package cookies owns beamgate's Erlang cookies and their life cycle:
// production cookies (a file, or Vault KV v2 with caching, a stale limit
// and the previous version during a rotation), resumable cookie rotation
// across a cluster, the revocation list shared by gateway replicas through
// Vault, and per-user gateway cookies.
//
// A production cookie authenticates beamgate to a production node and is
// never shown to an engineer or written to a log. A gateway cookie is what
// an engineer's node presents to beamgate: an HMAC of a gateway secret over
// the user name and a time window, so every SSH connection and every
// replica derives the same value without shared state.
package cookies
