// Package bench owns beamgate's end-to-end benchmark harness (`make bench`):
// one production node measured side by side through a direct distribution
// connection, plain OpenSSH `ssh -N -L` forwarding through a real sshd, and
// the beamgate binary in enforce mode with audit on, plus 200 concurrent
// hidden-node sessions through beamgate. It lives in this package's tests,
// gated by BEAMGATE_BENCH=1, and writes docs/benchmarks.md.
package bench
