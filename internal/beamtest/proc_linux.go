package beamtest

import "syscall"

// childSysProcAttr puts a child in its own process group (so cleanup can
// kill everything it forked) and makes the kernel kill it if the test binary
// dies first.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
