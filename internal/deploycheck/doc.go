// Package deploycheck holds no code: its tests check the files under
// deploy/ against the tools that consume them. For deploy/systemd:
// `systemd-analyze verify` accepts beamgate.service (with ExecStart pointed
// at a freshly built beamgate), `systemd-analyze security --offline=true`
// scores it at most 2.0, systemd-sysusers and systemd-tmpfiles create the
// user and directories the unit expects, the logrotate example only sends
// SIGHUP, and a real `beamgate serve` run under strace uses no system call
// or address family the unit's SystemCallFilter= and
// RestrictAddressFamilies= refuse. Each test skips, saying which Debian
// package to install, when its tool is missing; .ci/run installs them all.
package deploycheck
