package dist

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"
)

// PassThrough is the first byte of every non-tick frame on a link without
// a distribution header (erts PASS_THROUGH).
const PassThrough = 112

// VersionMagic is the byte that starts every external-format term.
const VersionMagic = 131

// Distribution-header tags that may follow VersionMagic at the start of a
// frame when DIST_HDR_ATOM_CACHE or FRAGMENTS was negotiated.
const (
	tagDistHeader    = 68
	tagDistFragment1 = 69
	tagDistFragmentN = 70
)

// DefaultMaxFrame is the frame size bound NewFrameReader uses when given a
// non-positive one.
const DefaultMaxFrame = 16 << 20

const (
	// readChunk is how much body FrameReader reads before growing its
	// buffer again, so a peer that announces a big frame and then sends
	// nothing costs only what it really sent.
	readChunk = 64 << 10
	// keepBuf is the largest buffer FrameReader keeps between frames.
	keepBuf = 256 << 10
)

// FrameTooLargeError is returned by FrameReader.Next when a frame's length
// exceeds the reader's bound. The body has not been read, so the stream is
// no longer in sync: close the connection.
type FrameTooLargeError struct {
	Len uint32 // announced body length
	Max int    // the reader's bound
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("dist: frame of %d bytes exceeds the %d-byte limit", e.Len, e.Max)
}

// FrameReader splits a post-handshake distribution stream into frames.
// It is not safe for concurrent use.
type FrameReader struct {
	// TrustedSize: frames up to this length are allocated in full when
	// their header arrives, instead of growing as their bytes do. Set it
	// only for a peer trusted not to announce frames it never sends (the
	// production leg); the default 0 keeps memory following the bytes.
	TrustedSize int

	r   *bufio.Reader
	max int
	buf []byte
	hdr [4]byte
}

// NewFrameReader returns a reader of 4-byte-length frames from r that
// refuses frames longer than maxFrame bytes (DefaultMaxFrame if
// maxFrame <= 0).
func NewFrameReader(r io.Reader, maxFrame int) *FrameReader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 16<<10)
	}
	return &FrameReader{r: br, max: maxFrame}
}

// MaxFrame returns the reader's frame size bound.
func (fr *FrameReader) MaxFrame() int { return fr.max }

// Next reads the next frame and returns its body, without the length. A
// tick is a frame with len(frame) == 0. The returned slice is only valid
// until the next call to Next.
//
// A clean end of stream between frames returns io.EOF; an end inside a
// frame returns io.ErrUnexpectedEOF. An oversize length returns a
// *FrameTooLargeError before any of the body is read, and a frame that
// starts with a distribution header or fragment (131 68/69/70) returns a
// *FrameError with Kind ErrDistHeader. Every error is final: the stream is
// out of sync afterwards.
func (fr *FrameReader) Next() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err // io.EOF only when no header byte was read
	}
	n := binary.BigEndian.Uint32(fr.hdr[:])
	if n == 0 {
		return fr.buf[:0], nil
	}
	if uint64(n) > uint64(fr.max) {
		return nil, &FrameTooLargeError{Len: n, Max: fr.max}
	}
	want := int(n)
	b := fr.buf[:0]
	if cap(b) > keepBuf && want <= keepBuf {
		b = nil // don't pin the buffer of one big frame forever
	}
	if want > cap(b) && want <= fr.TrustedSize {
		b = make([]byte, 0, want) // one allocation, no regrowth copies
	}
	for len(b) < want {
		chunk := min(want-len(b), max(len(b), readChunk))
		b = slices.Grow(b, chunk)
		m, err := io.ReadFull(fr.r, b[len(b):len(b)+chunk])
		b = b[:len(b)+m]
		if err != nil {
			fr.buf = b[:0]
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	fr.buf = b[:0]
	if len(b) >= 2 && b[0] == VersionMagic && isDistHeaderTag(b[1]) {
		return nil, &FrameError{Kind: ErrDistHeader, Off: 1,
			Detail: fmt.Sprintf("tag %d", b[1])}
	}
	return b[:len(b):len(b)], nil
}

// Detach hands the caller the buffer of the frame Next just returned: the
// caller may keep the slice, and the reader starts a new buffer for the
// next frame. It lets a relay queue a large frame without copying it.
func (fr *FrameReader) Detach() { fr.buf = nil }

func isDistHeaderTag(t byte) bool {
	return t == tagDistHeader || t == tagDistFragment1 || t == tagDistFragmentN
}

// AppendFrame appends body to dst preceded by its 4-byte big-endian length.
// body must be shorter than 4 GiB; callers bound their frames far below
// that (a violation is a programming error and panics).
func AppendFrame(dst, body []byte) []byte {
	if uint64(len(body)) > math.MaxUint32 {
		panic("dist: frame body exceeds 4 GiB")
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

var tick [4]byte

// WriteTick writes a tick (a zero-length frame) to w.
func WriteTick(w io.Writer) error {
	_, err := w.Write(tick[:])
	return err
}

// DefaultNetTicktime is OTP's default net_ticktime.
const DefaultNetTicktime = 60 * time.Second

// TickInterval returns how often a leg whose peer uses netTicktime must be
// ticked when idle: net_ticktime/4, as dist_util does. A non-positive
// netTicktime means OTP's default of 60 s.
func TickInterval(netTicktime time.Duration) time.Duration {
	if netTicktime <= 0 {
		netTicktime = DefaultNetTicktime
	}
	return netTicktime / 4
}

// FrameWriter serialises whole-frame writes on one leg and ticks the leg
// when it has been idle. It is safe for concurrent use.
type FrameWriter struct {
	mu    sync.Mutex
	w     io.Writer
	wrote bool // something was written since the last TickIfIdle
	err   error
}

// NewFrameWriter returns a FrameWriter writing to w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// WriteFrame writes one complete frame (length prefix included, as built by
// AppendFrame or AppendMessageFrame) with a single Write. After a write
// error every later call returns that error.
func (fw *FrameWriter) WriteFrame(frame []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.err != nil {
		return fw.err
	}
	_, fw.err = fw.w.Write(frame)
	fw.wrote = true
	return fw.err
}

// TickIfIdle writes a tick unless a frame was written since the previous
// call, and reports whether it ticked.
func (fw *FrameWriter) TickIfIdle() (bool, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.err != nil {
		return false, fw.err
	}
	if fw.wrote {
		fw.wrote = false
		return false, nil
	}
	fw.err = WriteTick(fw.w)
	return fw.err == nil, fw.err
}

// RunTicker calls TickIfIdle every interval until ctx is done or a write
// fails, and returns the reason it stopped.
func (fw *FrameWriter) RunTicker(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			if _, err := fw.TickIfIdle(); err != nil {
				return err
			}
		}
	}
}
