//go:build unix

package audit

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f, so two gateways cannot
// append to (and fork) the same chain. The lock is released when f is
// closed.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("audit: %s is locked by another process (another gateway appending?)", f.Name())
	}
	if err != nil {
		return fmt.Errorf("audit: lock %s: %w", f.Name(), err)
	}
	return nil
}
