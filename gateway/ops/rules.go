package ops

import "strings"

// ruleNames are the values of beamgate_decisions_total's rule label: the
// policy's own rule names, nothing else. The last is Other, for every
// rule not listed (a custom profile's rules among them), so the label's
// cardinality is fixed whatever profiles are loaded. Tests check that the
// built-in profiles' rules and the names the code writes are all here.
var ruleNames = []string{
	// configs/policy/readonly.yaml
	"net.identity", "system.info", "system.stats", "process.info", "process.info.default",
	"module.info", "code.ensure_loaded", "observer.backend", "observer.table_viewer",
	"observer.applications", "ets.info", "supervision.tree", "recon.read", "observer.collectors",
	"observer.load_charts", "heavy.read", "tracing", "ets.write", "mnesia.write", "process.signal",
	"node.control", "code.load", "os.and.files",
	// policy/always.go
	"secrets", "remote-shell", "code-wrapper",
	// policy/route.go, session.go, remote.go
	"default", "identity", "malformed", "operation", "no-code", "atom-budget",
	"net_kernel", "net_kernel.is_auth", "rex", "rex.features", "cluster.membership",
	"send", "send.registered", "send.alias", "session.own", "io.reply",
	"monitor", "monitor.down", "monitor-limit", "link", "unlink", "link.exit", "group-leader",
	"spawn.options", "remote-shell.stand_in", "remote-shell.probe", "break-glass.shell",
	// gateway/relay, gateway/views
	"frame-size", "monitor.cleanup", "view.childspec_redacted",
	Other,
}

// ruleIndex maps a rule name to its index in ruleNames.
var ruleIndex = func() map[string]int {
	m := make(map[string]int, len(ruleNames))
	for i, r := range ruleNames {
		m[r] = i
	}
	return m
}()

// otherRule is the index of Other in ruleNames.
var otherRule = len(ruleNames) - 1

// RuleLabel is the rule label a decision under rule is counted with: the
// rule itself when it is one of the policy's own names, else "other".
func RuleLabel(rule string) string { return ruleNames[ruleOf(rule)] }

func ruleOf(rule string) int {
	if i, ok := ruleIndex[rule]; ok {
		return i
	}
	return otherRule
}

// AuthReason maps a refused login's audit reason (the distinct failures
// of the connection, joined by "; ") to one of AuthReasons. A connection
// that tried several keys is counted once, by the first of: too_many
// (authenticated, over the per-user limit), unknown_user, bad_cert,
// bad_key; revocations, audit outages, timeouts and other methods are
// other.
func AuthReason(reason string) string {
	switch {
	case strings.Contains(reason, "revoked") || strings.Contains(reason, "revocation list"):
		return AuthOther
	case strings.Contains(reason, "too many connections"):
		return AuthTooMany
	case strings.Contains(reason, "unknown user"):
		return AuthUnknownUser
	case strings.Contains(reason, "certificate"):
		return AuthBadCert
	case strings.Contains(reason, "public key not listed"):
		return AuthBadKey
	}
	return AuthOther
}

func authIndex(reason string) int {
	switch AuthReason(reason) {
	case AuthUnknownUser:
		return 0
	case AuthBadKey:
		return 1
	case AuthBadCert:
		return 2
	case AuthTooMany:
		return 3
	}
	return 4
}
