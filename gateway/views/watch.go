package views

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// MinWatchInterval is the shortest --watch interval.
const MinWatchInterval = time.Second

// ErrWatchInterval refuses a watch interval under MinWatchInterval.
var ErrWatchInterval = fmt.Errorf("views: watch intervals under %v are refused", MinWatchInterval)

// maxWatchFailures ends a watch after this many refreshes in a row fail.
const maxWatchFailures = 3

// ANSI sequences Watch draws with.
const (
	ansiHome      = "\x1b[H"
	ansiClearEOL  = "\x1b[K"
	ansiClearDown = "\x1b[J"
)

// Watch renders every interval until ctx ends, redrawing the terminal in
// place: cursor home, each line cleared to its end, the rest of the
// screen cleared. Lines end in CRLF, since a PTY channel's far end may be
// in raw mode. A refresh that fails shows its error and the watch goes
// on, except for policy refusals and audit failures, which end it, as do
// three failures in a row. Watch returns nil when ctx ends.
func Watch(ctx context.Context, interval time.Duration, render func(io.Writer) error, term io.Writer) error {
	if interval < MinWatchInterval {
		return ErrWatchInterval
	}
	if _, err := io.WriteString(term, ansiHome+"\x1b[2J"); err != nil {
		return err
	}
	failures := 0
	for n := 1; ; n++ {
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "every %v, refresh %d at %s (Ctrl-C to stop)\n", interval, n, time.Now().UTC().Format("15:04:05 UTC"))
		err := render(&buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var denied *DeniedError
			if errors.As(err, &denied) || errors.Is(err, ErrAudit) {
				return err
			}
			if failures++; failures >= maxWatchFailures {
				return err
			}
			fmt.Fprintf(&buf, "\nrefresh failed: %v\n", err)
		} else {
			failures = 0
		}
		if _, err := term.Write(screen(buf.Bytes())); err != nil {
			return err
		}
		if sleep(ctx, interval) != nil {
			return nil
		}
	}
}

// screen turns rendered text into one in-place redraw.
func screen(text []byte) []byte {
	var out bytes.Buffer
	out.WriteString(ansiHome)
	for line := range bytes.Lines(text) {
		out.Write(bytes.TrimRight(line, "\r\n"))
		out.WriteString(ansiClearEOL + "\r\n")
	}
	out.WriteString(ansiClearDown)
	return out.Bytes()
}
