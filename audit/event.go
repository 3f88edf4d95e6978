package audit

// Event names what a record is about. Every event beamgate writes is one of
// the constants below; the package doc groups them by who writes them.
type Event string

// Events of the SSH front door (package gateway).
const (
	EventLogin         Event = "login"           // SSH authentication: allow, or deny with the reasons
	EventLogout        Event = "logout"          // an authenticated SSH connection ended
	EventDisconnect    Event = "disconnect"      // the gateway closed an idle connection
	EventChannel       Event = "channel"         // a channel type beamgate does not serve was refused
	EventSession       Event = "session"         // a session channel was refused (too many channels)
	EventSessionReq    Event = "session_request" // shell, pty-less subsystem, env, ... refused on a session channel
	EventExec          Event = "exec"            // a session command (banner, cookie, nodes, help, a view) allowed or refused
	EventForward       Event = "forward"         // a direct-tcpip (ssh -L) channel allowed or refused
	EventRemoteForward Event = "remote_forward"  // ssh -R refused
	EventEpmd          Event = "epmd"            // an epmd query answered by the gateway's epmd face
	EventCommand       Event = "command"         // a text view command (top, ets, ...) started or refused
	EventOffboard      Event = "offboard"        // a user or key revoked; live connections cut
	EventConfigReload  Event = "config_reload"   // the configuration was reloaded (SIGHUP); Detail says what it cut
)

// Events of the distribution relay (package gateway/relay) and the views.
const (
	EventSessionStart   Event = "session_start"   // an engineer node connected to a target
	EventSessionRefused Event = "session_refused" // the double handshake failed; Rule says where
	EventSessionEnd     Event = "session_end"     // with BytesIn/Out and MsgsIn/Out
	EventSessionCut     Event = "session_cut"     // the gateway ended a live session (slow engineer, revocation)
	EventMessage        Event = "message"         // one engineer→production message and its decision
	EventView           Event = "view"            // one call a text view made, and its decision
)

// Events of the operator commands.
const (
	EventCookieRotate Event = "cookie_rotate" // one step of a production cookie rotation
)

// Events of break-glass shells. Detail: request (its id), node, for,
// expires; input and output records carry the text and the shell's
// session.
const (
	EventShellRequest Event = "shell_request" // an engineer asked for a shell
	EventShellApprove Event = "shell_approve" // one approval; detail granted=true when it made the grant
	EventShellDeny    Event = "shell_deny"    // an approver refused a request
	EventShellRevoke  Event = "shell_revoke"  // a grant ended early
	EventShellCancel  Event = "shell_cancel"  // offboarding ended a user's requests and grants
	EventShellExpire  Event = "shell_expire"  // a grant ran out, or a request nobody approved in time
	EventShellOpen    Event = "shell_open"    // a shell started under a grant (or was refused)
	EventShellInput   Event = "shell_input"   // one expression, on disk before production sees it
	EventShellOutput  Event = "shell_output"  // what the shell printed (bounded)
	EventShellClose   Event = "shell_close"   // a shell ended, and why
)

// Events of the log itself. Detail keys are in the constants' comments.
const (
	// EventLogStart opens a chain: the first record of a new log, or of a
	// log written before log ids existed. Detail: log_id.
	EventLogStart Event = "log_start"
	// EventRotate is the first record of every file after the first:
	// Detail prev_file (base name), prev_seq, prev_hash (the previous
	// file's final record), log_id. Its Seq and Prev continue the chain.
	EventRotate Event = "rotate"
	// EventRetention is written before an old file is deleted. Detail:
	// deleted (base name), last_seq, last_hash.
	EventRetention Event = "retention"
	// EventRecovered follows a torn final line found at open, which was
	// moved aside. Detail: torn_bytes, torn_sha256, quarantine (base name).
	EventRecovered Event = "recovered"
	// EventOutage is the first record after writes failed and resumed.
	// Detail: since, until (RFC 3339), duration, refused (appends refused
	// meanwhile), error.
	EventOutage Event = "audit_outage"
	// EventCheckpoint records a signed checkpoint of the chain's head.
	// Detail: log_id, replica, seq, head, at, key_id, sig.
	EventCheckpoint Event = "checkpoint"
)

// Events lists every event, for documentation, flags and tests.
var Events = []Event{
	EventLogin, EventLogout, EventDisconnect, EventChannel, EventSession, EventSessionReq,
	EventExec, EventForward, EventRemoteForward, EventEpmd, EventCommand, EventOffboard,
	EventSessionStart, EventSessionRefused, EventSessionEnd, EventSessionCut, EventMessage, EventView,
	EventCookieRotate,
	EventShellRequest, EventShellApprove, EventShellDeny, EventShellRevoke, EventShellCancel, EventShellExpire,
	EventShellOpen, EventShellInput, EventShellOutput, EventShellClose,
	EventLogStart, EventRotate, EventRetention, EventRecovered, EventOutage, EventCheckpoint,
}

// Dir is the direction of a relayed or view message.
type Dir string

// Dir values.
const (
	DirE2P Dir = "e2p" // engineer (or a view) to production
	DirP2E Dir = "p2e" // production to engineer
	// DirGateway is a message the gateway itself sends to production on
	// the engineer's behalf (the monitor cleanup of a refused call).
	DirGateway Dir = "gateway"
)

// Decision is what the gateway decided about the action a record
// describes.
type Decision string

// Decision values.
const (
	DecisionAllow      Decision = "allow"       // done, or forwarded
	DecisionDeny       Decision = "deny"        // refused
	DecisionAllowWrite Decision = "allow_write" // forwarded and flagged as a write (a role in mode audit)
	DecisionInfo       Decision = "info"        // a fact, not a decision (a logout, a session end)
)

// Decisions lists every decision.
var Decisions = []Decision{DecisionAllow, DecisionDeny, DecisionAllowWrite, DecisionInfo}
