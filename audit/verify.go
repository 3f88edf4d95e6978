package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// BreakError names the first record where a log fails verification.
type BreakError struct {
	Line   int    // 1-based line number in the file
	Seq    uint64 // the sequence number the chain expects at that line
	Reason string
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("audit: chain broken at line %d (expected seq %d): %s", e.Line, e.Seq, e.Reason)
}

// Verify reads a whole audit log and checks every line: JSON validity and
// canonical form, Seq continuity from 1, Prev linkage from the genesis hash,
// and each Hash. It returns the number of good records before the first
// break. A break is reported as a *BreakError; a read error is returned as
// is. An empty input is a valid, empty log.
func Verify(r io.Reader) (n int, err error) {
	lr := newLineReader(r)
	prev := GenesisHash
	for seq := uint64(1); ; seq++ {
		line, err := lr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			var tooLong *LineTooLongError
			switch {
			case errors.Is(err, errTornLine):
				return n, &BreakError{Line: lr.line, Seq: seq, Reason: err.Error() + ": torn write or truncation"}
			case errors.As(err, &tooLong):
				return n, &BreakError{Line: lr.line, Seq: seq, Reason: err.Error()}
			}
			return n, fmt.Errorf("audit: read line %d: %w", lr.line, err)
		}
		rec, err := parseLine(line)
		if err != nil {
			return n, &BreakError{Line: lr.line, Seq: seq, Reason: err.Error()}
		}
		if rec.Seq != seq {
			return n, &BreakError{Line: lr.line, Seq: seq, Reason: fmt.Sprintf("seq is %d (record missing, duplicated or reordered)", rec.Seq)}
		}
		if rec.Prev != prev {
			return n, &BreakError{Line: lr.line, Seq: seq, Reason: fmt.Sprintf("prev %.12s… does not match the previous record's hash %.12s…", rec.Prev, prev)}
		}
		prev = rec.Hash
		n++
	}
}

// VerifyFile is Verify on the file at path. On a log that is being
// appended to, a torn final line may be a write in progress: run it again.
func VerifyFile(path string) (n int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	return Verify(f)
}
