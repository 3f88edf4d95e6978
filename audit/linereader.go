package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// errTornLine is returned by lineReader.next when the input ends in the
// middle of a line (no final '\n'): a crash during a write, or, when
// following a live file, a write still in progress.
var errTornLine = errors.New("incomplete final line (no newline)")

// LineTooLongError reports a line longer than MaxLineLen.
type LineTooLongError struct {
	Line int // 1-based
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("audit: line %d is longer than %d bytes", e.Line, MaxLineLen)
}

// lineReader reads '\n'-terminated lines of at most MaxLineLen bytes
// (newline included) without buffering more than that.
type lineReader struct {
	br   *bufio.Reader
	buf  []byte // the current line, possibly partial
	line int    // number of the line being read, 1-based
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), line: 1}
}

// next returns the next line without its '\n'. The slice is valid until the
// following call. At a clean end it returns io.EOF; if the input ends in the
// middle of a line it returns errTornLine and keeps the partial line, so a
// later call can complete it once more data is readable (tail -f).
func (lr *lineReader) next() ([]byte, error) {
	if len(lr.buf) > 0 && lr.buf[len(lr.buf)-1] == '\n' {
		lr.buf = lr.buf[:0] // the line returned last time
		lr.line++
	}
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if len(lr.buf)+len(chunk) > MaxLineLen {
			return nil, &LineTooLongError{Line: lr.line}
		}
		lr.buf = append(lr.buf, chunk...)
		switch {
		case err == nil:
			return lr.buf[:len(lr.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(lr.buf) == 0 {
				return nil, io.EOF
			}
			return nil, errTornLine
		default:
			return nil, err
		}
	}
}
