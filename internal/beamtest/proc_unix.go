//go:build unix && !linux

package beamtest

import "syscall"

// childSysProcAttr puts a child in its own process group so cleanup can kill
// everything it forked.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
