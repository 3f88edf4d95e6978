package dist

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"beamgate/gateway/dist/term"
)

// TestGoldenFrames decodes the frames captured from real OTP 25 nodes by
// TestCaptureRealNodes -update; each file is named after its operation.
func TestGoldenFrames(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "frames", "*.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden frames (%v)", err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := DecodeFrame(body, nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		name := strings.TrimSuffix(filepath.Base(f), ".bin")
		if want := name[strings.Index(name, "-")+5:]; strings.ToLower(m.Control.Op().String()) != want {
			t.Errorf("%s decodes as %v", f, m.Control.Op())
		}
		checkReencode(t, m)
	}
}

// limits for fuzzing: small, so the fuzzer explores the bounds.
var fuzzLimits = &term.Limits{MaxDepth: 20, MaxElements: 1000, MaxBinary: 4096, MaxBigBytes: 64}

func FuzzDecodeFrame(f *testing.F) {
	for _, m := range allMessages() {
		body, err := AppendMessage(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := DecodeFrame(frame, fuzzLimits)
		ctrl, off, cerr := DecodeControl(frame, fuzzLimits)
		if err != nil {
			var fe *FrameError
			var ce *ControlError
			var ue *UnknownOpError
			if !errors.As(err, &fe) && !errors.As(err, &ce) && !errors.As(err, &ue) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if cerr != nil || ctrl.Op() != m.Control.Op() || off > len(frame) {
			t.Fatalf("DecodeControl = %v, %d, %v after DecodeFrame succeeded", ctrl, off, cerr)
		}
		body, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("re-encoding %v: %v", m, err)
		}
		back, err := DecodeFrame(body, fuzzLimits)
		if err != nil {
			t.Fatalf("re-encoded %v does not decode: %v", m, err)
		}
		if !back.Equal(m) {
			t.Fatalf("round trip changed %v into %v", m, back)
		}
	})
}

func FuzzFrameReader(f *testing.F) {
	f.Add(stream([]byte{112, 131, 106}, nil, []byte("abc")), 100)
	f.Add([]byte("\x00\x00\x00\x05ab"), 100)
	f.Add([]byte("\xff\xff\xff\xff"), 1<<20)
	f.Add(stream([]byte{131, 68, 1, 2}), 100)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max > 1<<20 {
			max = 1 << 20
		}
		fr := NewFrameReader(bytes.NewReader(in), max)
		total := 0
		for i := 0; ; i++ {
			body, err := fr.Next()
			if err != nil {
				var tl *FrameTooLargeError
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &tl) && !errors.Is(err, ErrDistHeader) {
					t.Fatalf("unexpected error %T: %v", err, err)
				}
				return
			}
			if len(body) > fr.MaxFrame() {
				t.Fatalf("frame of %d bytes over the %d limit", len(body), fr.MaxFrame())
			}
			total += 4 + len(body)
			if total > len(in) || i > len(in) {
				t.Fatalf("read %d bytes of frames from %d bytes of input", total, len(in))
			}
		}
	})
}
