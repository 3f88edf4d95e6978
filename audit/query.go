package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Filter selects records. Empty fields match everything; set fields must
// match exactly.
type Filter struct {
	User     string
	Node     string // matches Engineer or Target
	Cluster  string
	Decision Decision
	Session  string
	Event    Event
	Since    time.Time // inclusive; zero means no lower bound
	Until    time.Time // exclusive; zero means no upper bound
}

// Match reports whether r passes f.
func (f Filter) Match(r *Record) bool {
	switch {
	case f.User != "" && r.User != f.User,
		f.Node != "" && r.Engineer != f.Node && r.Target != f.Node,
		f.Cluster != "" && r.Cluster != f.Cluster,
		f.Decision != "" && r.Decision != f.Decision,
		f.Session != "" && r.Session != f.Session,
		f.Event != "" && r.Event != f.Event,
		!f.Since.IsZero() && r.Time.Before(f.Since),
		!f.Until.IsZero() && !r.Time.Before(f.Until):
		return false
	}
	return true
}

// Query streams the records of an audit log that match f to fn, in file
// order, stopping at fn's first error, which it returns. It parses lines
// but does not check the hash chain (that is Verify's job). A malformed,
// torn or over-long line (more than MaxLineLen bytes) is an error naming
// its line.
func Query(r io.Reader, f Filter, fn func(Record) error) error {
	lr := newLineReader(r)
	for {
		rec, err := readRecord(lr)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if f.Match(&rec) {
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
}

// readRecord reads and parses the next line. It returns io.EOF at a clean
// end and errTornLine (wrapped) for a partial last line.
func readRecord(lr *lineReader) (Record, error) {
	var rec Record
	line, err := lr.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return rec, io.EOF
		}
		var tooLong *LineTooLongError
		if errors.As(err, &tooLong) {
			return rec, err
		}
		return rec, fmt.Errorf("audit: line %d: %w", lr.line, err)
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		return rec, fmt.Errorf("audit: line %d: invalid JSON: %w", lr.line, err)
	}
	return rec, nil
}

// TailPollInterval is how often Tail in follow mode looks for new lines.
var TailPollInterval = 250 * time.Millisecond

// Tail streams the records of the audit log at path to fn. Without follow
// it stops at the end of the file, like Query with an empty Filter. With
// follow it then polls for new lines until ctx ends (returning ctx's
// error) or fn fails; a line still being written is waited for, and if the
// path is replaced by a new file (rotation), Tail reads the old one to its
// end and continues with the new file from its start. [TailWith] (tail.go)
// also starts at a seq, or at the last records, and filters.
func Tail(ctx context.Context, path string, follow bool, fn func(Record) error) error {
	return TailWith(ctx, path, TailOptions{Follow: follow}, fn)
}

// replaced reports whether path now names a different file than f, or f
// was truncated below what has been read.
func replaced(f *os.File, path string) (bool, error) {
	cur, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("audit: %w", err)
	}
	now, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // rotation in progress; keep polling
	}
	if err != nil {
		return false, fmt.Errorf("audit: %w", err)
	}
	if !os.SameFile(cur, now) {
		return true, nil
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, fmt.Errorf("audit: %w", err)
	}
	if cur.Size() < pos {
		return false, fmt.Errorf("audit: %s was truncated while being followed", path)
	}
	return false, nil
}
