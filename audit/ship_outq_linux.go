//go:build linux

package audit

import (
	"net"
	"syscall"
	"unsafe"
)

// syslogOutq returns what the kernel still holds in c's send queue
// (SIOCOUTQ): for TCP the bytes the peer has not acknowledged, for unix
// sockets the memory of messages the peer has not read yet.
func syslogOutq(c net.Conn) (int, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return 0, false
	}
	return int(n), true
}
