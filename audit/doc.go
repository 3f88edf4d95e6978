// Package audit owns beamgate's tamper-evident audit log: one JSON line per
// gateway decision (relayed message, refused channel, login, session start
// and end, epmd answer), hash-chained, fsynced before the decision takes
// effect.
//
// # Audit before forward
//
// The relay calls [Log.Append] and forwards a message only after Append
// returned nil. Append returns only once the record is on disk (written and
// fsynced). If a write or fsync fails, the Log enters an outage (see
// Outages): that Append and every one until the disk works again return an
// error wrapping [ErrLogFailed], and [Log.Failed] is closed so live
// sessions can be cut. There is no fail-open mode.
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
//   - the log itself: log_start (a new chain and its log id), rotate (the
//     first record of every rotated-to file), retention (an old file is
//     about to be deleted), recovered (a torn line was moved aside at
//     open), audit_outage (writes failed and resumed), checkpoint (a signed
//     head). Their Detail keys are in event.go; numbers there are decimal
//     strings, times RFC 3339.
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
// What a crash (SIGKILL, power loss) can leave, [Open] repairs unattended,
// without discarding a byte, and the result verifies:
//
//   - A torn final line (bytes after the last newline: a write cut short).
//     Open copies them to a quarantine file beside the log,
//     <base>.torn-<UTC yyyymmddThhmmssZ>-<n> (mode 0600, fsynced, directory
//     fsynced), truncates the log to its last newline, and appends a
//     recovered record continuing the chain: Detail torn_bytes,
//     torn_sha256 (hex SHA-256 of the bytes) and quarantine (the file's
//     base name). The copy is written as <name>.pending first and renamed
//     once its record is on disk, so a crash during the repair is finished
//     (or redone) by the next Open.
//   - A missing or empty active file beside rotated files (a crash between
//     a rotation's rename and the new file's first record, or a rotation
//     done by hand): Open starts it with a rotate record continuing the
//     newest rotated file.
//   - An interrupted rotation (see Rotation): undone.
//
// Open still refuses (fail closed), naming the line and "beamgate audit
// verify", a last complete line that is not a valid record, and an
// unterminated tail longer than any record: neither is a torn write.
//
// # Outages
//
// The writer knows the offset of the end of the last complete record. When
// a write or fsync fails (a full disk, an I/O error) it truncates the file
// back to that offset and fsyncs, so no record is ever left half-written,
// and a record that failed is not in the file: its Seq is used again and
// the file has no gaps. The record being written, those queued behind it
// and every later Append fail with an error wrapping [ErrLogFailed],
// [ErrUnavailable] (whose text is the reason to show the engineer) and the
// cause; [Log.Err] returns it, [Log.Stats] counts the refused appends, and
// [Options].Logger gets a line for the operator.
//
// The log resumes by itself. After [Options].ProbeInterval (1 s by
// default, doubling after each failed probe up to ten times that) the
// writer cuts the file back again and writes an audit_outage record
// (Detail since and until, RFC 3339; duration, a Go duration such as
// "1m2.5s"; refused, how many appends were refused; error, the failure)
// with write and fsync. That probe is the outage's record: if it fails the
// writer waits again; once it is on disk, appends are accepted. Appends made
// while a probe is being written wait for its outcome instead of failing.
//
// [Log.Failed] is closed when an outage starts and replaced by a new
// channel once it ends: callers must call Failed again after it fired (the
// relay's watchdog calls it on every turn of its loop).
//
// # Rotation
//
// The active file is the path given to [Open] (audit.jsonl): it always is
// the file being written, for tail -f and logrotate. A rotation ([Log.Rotate],
// which the gateway calls on SIGHUP; [Options].RotateSize; or
// [Options].RotateDaily, at the first write after UTC midnight) renames it
// to <path>.<UTC yyyymmddThhmmss.nnnnnnnnnZ>, names that sort in time
// order, and starts a new active file (mode 0600) whose first record is a
// rotate record: Detail prev_file (the rotated file's base name), prev_seq
// and prev_hash (its final record) and log_id; its Seq and Prev continue
// the chain. It all happens on the writer goroutine, so no append
// interleaves. To keep the active path naming a locked file throughout,
// the rename is done as a hard link to the rotated name, then the new file
// (prepared as <path>.rotating) renamed over the path; Open undoes a
// rotation a crash interrupted before that last rename.
//
// After a rotation, retention deletes the oldest rotated files beyond
// [Options].Keep (a count) and [Options].KeepAge (by rotation time),
// oldest first, writing a retention record (Detail deleted, last_seq,
// last_hash) to the active file before each deletion (audit before
// action). [Options].OnRotate is then called; the checkpoint signer hooks
// it.
//
// [Segments] lists a log's files, oldest first, for readers. The log id
// is chosen when a log starts (its log_start record) and repeated in every
// rotate record; [Log.ID] returns it.
package audit
