package audit

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Sink is the one interface every writer of audit records goes through.
// *Log implements it; the gateway, the relay, the views and the operator
// commands hold a Sink (through a [Writer]), never a *Log.
type Sink interface {
	// Append returns once r is on disk (see [Log.Append]). Only then may
	// the caller act on what r records.
	Append(ctx context.Context, r *Record) error
	// Failed is closed when the sink fails (for a *Log, when an outage
	// starts): live sessions select on it and end (fail closed). A sink
	// that recovers returns a new channel afterwards, so call Failed again
	// after it fired rather than keeping the first channel.
	Failed() <-chan struct{}
	// Err is why the sink failed (nil while it works).
	Err() error
}

var _ Sink = (*Log)(nil)

// Stake says what an audit failure does to the action a record describes.
// Every call of [Writer.Record] names one, so whether a failure blocks the
// action is written at the call site.
type Stake uint8

const (
	// Gate: the action happens only once its record is on disk. Use it for
	// everything that reaches production or hands out a credential: a
	// forwarded message, an accepted login, an opened ssh -L channel or
	// relay session, a started view, a printed gateway cookie, a cookie
	// rotation step. Record returns the error and the caller must not act.
	Gate Stake = iota + 1
	// After: the record describes what already happened or was refused (a
	// refusal, a logout, a session end). Record logs a failure and returns
	// nil: the refusal stands either way, and a failed log still ends every
	// session through [Sink.Failed].
	After
)

func (s Stake) String() string {
	switch s {
	case Gate:
		return "gate"
	case After:
		return "after"
	}
	return "unknown"
}

// DefaultTimeout bounds one append made through a Writer with no Timeout
// of its own.
const DefaultTimeout = 5 * time.Second

// Writer is how beamgate code writes audit records: a Sink, a bounded
// wait, and a logger for failures. The zero Timeout is DefaultTimeout; a
// negative one waits as long as ctx does (the relay's per-message path,
// whose ctx is the session's). It is a value: copy it freely.
type Writer struct {
	Sink    Sink
	Log     *zap.Logger // failures are logged here; nil logs nothing
	Timeout time.Duration
}

// Record appends r with the given stake. With Gate it returns the append
// error, which the caller must act on; with After it always returns nil.
// An After record is written even when ctx is already cancelled (a
// session's last records are written as it ends).
func (w Writer) Record(ctx context.Context, stake Stake, r *Record) error {
	if stake == After {
		ctx = context.WithoutCancel(ctx)
	}
	if w.Timeout >= 0 {
		t := w.Timeout
		if t == 0 {
			t = DefaultTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	var err error
	if w.Sink == nil {
		err = ErrNoSink
	} else {
		err = w.Sink.Append(ctx, r)
	}
	if err != nil && w.Log != nil {
		w.Log.Error("audit append failed", zap.String("event", string(r.Event)), zap.Stringer("stake", stake), zap.Error(err))
	}
	if stake == Gate {
		return err
	}
	return nil
}

// Failed is the sink's failure channel (a channel that never closes when
// there is no sink: Record then fails every Gate).
func (w Writer) Failed() <-chan struct{} {
	if w.Sink == nil {
		return nil
	}
	return w.Sink.Failed()
}

// Err is why the sink failed, or nil.
func (w Writer) Err() error {
	if w.Sink == nil {
		return ErrNoSink
	}
	return w.Sink.Err()
}
