// Package cookies owns beamgate's Erlang cookies and their life cycle:
// production cookies (a file, or Vault KV v2 with caching, a stale limit
// and the previous version during a rotation), the order in which the
// gateway tries them (Attempts), the Vault side of a rotation (its state
// and the check-and-set write of a new version; gateway/rotate drives the
// nodes), the revocation list shared by gateway replicas through Vault,
// and per-user gateway cookies. It depends on storage (Vault, files) and
// zap only.
//
// A production cookie authenticates beamgate to a production node and is
// never shown to an engineer or written to a log. A gateway cookie is what
// an engineer's node presents to beamgate: an HMAC of a gateway secret over
// the user name and a time window, so every SSH connection and every
// replica derives the same value without shared state.
package cookies
