// Package bench owns beamgate's end-to-end benchmark harness (`make bench`):
// one production node measured side by side through a direct distribution
// connection, plain OpenSSH `ssh -N -L` forwarding through a real sshd, and
// the beamgate binary in enforce mode with audit on, plus 200 concurrent
// hidden-node sessions through beamgate. It lives in this package's tests,
// gated by BEAMGATE_BENCH=1, and writes docs/benchmarks.md.
//
// Two audit-log measurements live beside it, each with its own section of
// docs/benchmarks.md: TestAuditCheckpointCost (make bench-checkpoint), what
// signed checkpoints add to a relayed call, and TestAuditVerifySet (make
// bench-verify), the time to verify a ~1 GiB rotated set.
package bench
