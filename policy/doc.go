// Package policy decides, for each message an engineer's node sends towards
// a production node, whether it passes: allow, deny, or allow-and-flag as a
// write. It owns the rule format operators write in YAML, the built-in
// profiles (readonly), and the per-session state a decision needs (what the
// session spawned, its atom budget). It knows nothing of SSH or sockets.
package policy
