//go:build unix

package beamtest

import (
	"os"
	"syscall"
)

// killGroup sends SIGKILL to the process group led by p, which
// childSysProcAttr created, and to p itself in case the group is gone.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}
