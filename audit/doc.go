// Package audit owns beamgate's tamper-evident audit log: one JSON line per
// gateway decision (relayed message, refused channel, login, session start
// and end, epmd answer), hash-chained, fsynced before the decision takes
// effect.
//
// # Audit before forward
//
// The relay calls [Log.Append] and forwards a message only after Append
// returned nil. Append returns only once the record is on disk (written and
// fsynced). If a write or fsync ever fails, the Log fails permanently: that
// Append and every later one return an error wrapping [ErrLogFailed], and
// [Log.Failed] is closed so live sessions can be cut. There is no fail-open
// mode.
//
// # Writing records
//
// Every writer (the SSH front door, the relay, the text views, the
// operator commands) holds a [Sink] through a [Writer] and calls
// [Writer.Record] with a [Stake]: [Gate] where the action waits for its
// record (anything that reaches production or hands out a credential; an
// error means the action does not happen), [After] where the record
// describes what already happened or was refused (a failure is logged).
//
// # Events
//
// The vocabulary is in event.go: [Event], [Dir] and [Decision] are typed,
// and [Events] lists every event. By writer:
//
//   - front door: login, logout, disconnect (idle), channel, session,
//     session_request, exec, forward (ssh -L), remote_forward (ssh -R,
//     refused), epmd, command (a text view), offboard (a revoked user's
//     connection cut);
//   - relay: session_start, session_refused, session_end, session_cut,
//     message (one engineer→production message, with op, mfa, rule);
//   - text views: view (one call a view made);
//   - operator commands: cookie_rotate (one rotation step, Detail["step"]),
//     offboard (a revocation, Detail["step"] revoke or done);
//   - the log itself: rotate.
//
// # Line format and hash chain
//
// Each line is the zap JSON encoding of a [Record] (sampling off, keys in
// snake_case, zero values omitted except time, seq and prev). Let L be that
// line without its hash field, e.g.
//
//	{"time":"2026-01-02T03:04:05.123Z","seq":7,"event":"message",...,"prev":"<64 hex>"}
//
// The record's hash is hex(SHA-256(prev || L)), where prev is the previous
// record's hash as 64 lowercase hex characters (64 zeros for the first
// record, "genesis"). The written line is L with ,"hash":"<hex>" inserted
// before the final '}', followed by '\n'. A verifier strips the trailing
// hash field textually and recomputes; with a shell:
//
//	printf '%s%s' "$prev" "$L" | sha256sum
//
// [Verify] also requires every line to be in canonical form (exactly the
// bytes this package would write for the record it parses to), so the
// fields a reader sees are the bytes that were hashed: no duplicate keys,
// no alternative escapes, no extra whitespace.
//
// The chain detects edits, deletions, reorderings and truncation in the
// middle of the file; it does not stop someone who can rewrite the whole
// file from rewriting the whole chain. Anchor [Log.Head] somewhere else
// (another system, a signed "rotate" record) for that.
//
// # Crashes
//
// A crash in the middle of a write can leave a torn final line. [Open]
// refuses such a file (fail closed) with an error naming the line and
// "beamgate audit verify"; an operator has to look at the file and repair
// it. Open never truncates anything.
package audit
