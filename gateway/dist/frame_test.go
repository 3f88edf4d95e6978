package dist

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// stream concatenates frames built by AppendFrame.
func stream(bodies ...[]byte) []byte {
	var b []byte
	for _, body := range bodies {
		b = AppendFrame(b, body)
	}
	return b
}

func TestFrameReader(t *testing.T) {
	body1 := []byte{112, 131, 104, 0}
	big := bytes.Repeat([]byte{112}, 3*readChunk+5)
	fr := NewFrameReader(bytes.NewReader(stream(body1, nil, big, body1)), 0)
	if fr.MaxFrame() != DefaultMaxFrame {
		t.Errorf("MaxFrame() = %d, want %d", fr.MaxFrame(), DefaultMaxFrame)
	}
	for i, want := range [][]byte{body1, nil, big, body1} {
		got, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
	if cap(fr.buf) > keepBuf {
		t.Errorf("reader kept a %d-byte buffer after a small frame", cap(fr.buf))
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Errorf("at end: %v, want io.EOF", err)
	}
}

// failingReader returns its bytes and then fails the test if read again.
type failingReader struct {
	t *testing.T
	r io.Reader
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		f.t.Error("body was read after an oversize length")
	}
	return n, err
}

func TestFrameReaderTooLarge(t *testing.T) {
	fr := NewFrameReader(&failingReader{t, strings.NewReader("\x00\x01\x00\x01")}, 1<<16)
	_, err := fr.Next()
	var tl *FrameTooLargeError
	if !errors.As(err, &tl) || tl.Len != 1<<16+1 || tl.Max != 1<<16 {
		t.Fatalf("Next() error = %v, want *FrameTooLargeError{65537, 65536}", err)
	}
	// A huge announced length must not allocate the announced size.
	fr = NewFrameReader(strings.NewReader("\x7f\xff\xff\xff"+"p"), 1<<31)
	if _, err := fr.Next(); err != io.ErrUnexpectedEOF {
		t.Errorf("Next() on a short huge frame = %v, want io.ErrUnexpectedEOF", err)
	}
	if cap(fr.buf) > 2*readChunk {
		t.Errorf("reader allocated %d bytes for a frame that sent 1 byte", cap(fr.buf))
	}
}

func TestFrameReaderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"eof in length", "\x00\x00", io.ErrUnexpectedEOF},
		{"eof in body", "\x00\x00\x00\x05pp", io.ErrUnexpectedEOF},
		{"dist header", string(stream([]byte{131, 68, 0})), ErrDistHeader},
		{"first fragment", string(stream([]byte{131, 69, 0})), ErrDistHeader},
		{"next fragment", string(stream([]byte{131, 70, 0})), ErrDistHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFrameReader(strings.NewReader(tt.in), 100).Next()
			if !errors.Is(err, tt.want) {
				t.Errorf("Next() error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTickInterval(t *testing.T) {
	if got := TickInterval(0); got != 15*time.Second {
		t.Errorf("TickInterval(0) = %v", got)
	}
	if got := TickInterval(4 * time.Second); got != time.Second {
		t.Errorf("TickInterval(4s) = %v", got)
	}
}

func TestFrameWriterTicksWhenIdle(t *testing.T) {
	var out bytes.Buffer
	fw := NewFrameWriter(&out)
	if ticked, err := fw.TickIfIdle(); !ticked || err != nil {
		t.Fatalf("idle TickIfIdle = %t, %v", ticked, err)
	}
	if err := fw.WriteFrame(AppendFrame(nil, []byte("p"))); err != nil {
		t.Fatal(err)
	}
	if ticked, _ := fw.TickIfIdle(); ticked {
		t.Error("ticked right after a write")
	}
	if ticked, _ := fw.TickIfIdle(); !ticked {
		t.Error("did not tick after an idle interval")
	}
	want := "\x00\x00\x00\x00" + "\x00\x00\x00\x01p" + "\x00\x00\x00\x00"
	if out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestFrameWriterStickyError(t *testing.T) {
	fw := NewFrameWriter(brokenWriter{})
	if err := fw.WriteFrame([]byte{0, 0, 0, 0}); err != io.ErrClosedPipe {
		t.Fatalf("WriteFrame = %v", err)
	}
	if _, err := fw.TickIfIdle(); err != io.ErrClosedPipe {
		t.Fatalf("TickIfIdle after failure = %v", err)
	}
}
