package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"beamgate/audit"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// cliAuditSuffix marks the audit files of commands run while a gateway
// holds the main log: <audit.path>.cli-<UTC time>-<pid>.
const cliAuditSuffix = ".cli-"

// openCLIAudit opens the audit log for a command (cookie rotate,
// offboard). The main log is flock'ed by a running gateway, and two
// writers would fork its hash chain; so when the lock is held the command
// writes a sibling file <path>.cli-<UTC time>-<pid>, a log of its own with
// its own chain, and says so on stderr. `beamgate audit --config` reads and
// verifies the siblings along with the main log.
func openCLIAudit(path string, stderr io.Writer) (*audit.Log, string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", err
	}
	l, err := audit.Open(path, audit.Options{})
	if err == nil {
		return l, path, nil
	}
	if !lockHeld(path) {
		return nil, "", err
	}
	side := fmt.Sprintf("%s%s%s-%d", path, cliAuditSuffix, time.Now().UTC().Format("20060102T150405Z"), os.Getpid())
	l, err = audit.Open(side, audit.Options{})
	if err != nil {
		return nil, "", err
	}
	fmt.Fprintf(stderr, "audit: %s is held by a running gateway; this command's records go to %s\n", path, side)
	return l, side, nil
}

// lockHeld reports whether another process holds the audit log's flock.
func lockHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// cliAuditFiles returns the main log (if it exists) and its CLI siblings,
// in name (= time) order.
func cliAuditFiles(path string) []string {
	out, _ := audit.Segments(path) // the rotated files, oldest first, then the active one
	return append(out, cliSiblings(path)...)
}

// globEscape quotes glob metacharacters in a path.
func globEscape(p string) string {
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '*' || c == '?' || c == '[' || c == '\\' {
			out = append(out, '\\')
		}
		out = append(out, p[i])
	}
	return string(out)
}

// cliLogger is the commands' operational logger: warnings and errors, as
// JSON on stderr. Cookies are never logged.
func cliLogger(stderr io.Writer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(stderr), zap.WarnLevel))
}

// cliSiblings lists the <audit.path>.cli-* logs the operator commands
// wrote while a gateway held the main log.
func cliSiblings(path string) []string {
	side, _ := filepath.Glob(globEscape(path) + cliAuditSuffix + "*")
	slices.Sort(side)
	return side
}
