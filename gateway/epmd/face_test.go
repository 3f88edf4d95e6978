package epmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"
)

// observations records what a Face reports to Observe.
type observations struct {
	mu  sync.Mutex
	got []string
}

func (o *observations) observe(req Request, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, req.String()+" "+outcome)
}

func (o *observations) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

// testFace allows "prod" on gateway port 9200.
func testFace(obs *observations) *Face {
	return &Face{
		Lookup: func(alive string) (uint16, bool) {
			if alive == "prod" {
				return 9200, true
			}
			return 0, false
		},
		Names:   func() []NameEntry { return []NameEntry{{Name: "prod", Port: 9200}} },
		Observe: obs.observe,
	}
}

// serveClient runs f.Serve on one end of a pipe, writes wire from the other
// and reads until the face closes (bounded by a deadline).
func serveClient(t *testing.T, f *Face, wire []byte) (answer []byte, serveErr error) {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	done := make(chan error, 1)
	go func() { done <- f.Serve(context.Background(), server) }()
	if err := client.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	go client.Write(wire) // may block on bytes the face never reads; ends when client closes
	answer, err := io.ReadAll(client)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("reading answer: %v", err)
	}
	return answer, <-done
}

func TestFaceAnswers(t *testing.T) {
	tests := []struct {
		name    string
		wire    []byte
		answer  []byte
		observe string
	}{
		{"port_please2 allowed", unhex(t, capturedPortPlease2), unhex(t, capturedPort2Resp), "PORT_PLEASE2_REQ answered"},
		{"port_please2 other", unhex(t, "0007 7a 736563726574"), []byte{'w', 1}, "PORT_PLEASE2_REQ not_found"},
		{"names", unhex(t, "0001 6e"), append(unhex(t, "00001111"), "name prod at port 9200\n"...), "NAMES_REQ answered"},
		{"dump", unhex(t, "0001 64"), nil, "DUMP_REQ refused"},
		{"kill", unhex(t, "0001 6b"), nil, "KILL_REQ refused"},
		{"stop", unhex(t, "0005 73 70726f64"), []byte("NOEXIST"), "STOP_REQ refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs observations
			answer, err := serveClient(t, testFace(&obs), tt.wire)
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if !bytes.Equal(answer, tt.answer) {
				t.Fatalf("answer = %q, want %q", answer, tt.answer)
			}
			if got := obs.list(); !reflect.DeepEqual(got, []string{tt.observe}) {
				t.Fatalf("Observe = %q, want %q", got, tt.observe)
			}
		})
	}
}

func TestFaceNoLookupAnswersNotFound(t *testing.T) {
	answer, err := serveClient(t, &Face{}, unhex(t, capturedPortPlease2))
	if err != nil || !bytes.Equal(answer, []byte{'w', 1}) {
		t.Fatalf("answer = %q, %v; want w 1", answer, err)
	}
	answer, err = serveClient(t, &Face{}, unhex(t, "0001 6e"))
	if err != nil || !bytes.Equal(answer, unhex(t, "00001111")) {
		t.Fatalf("NAMES answer = %x, %v; want 00001111", answer, err)
	}
}

func TestFaceRejectsBadRequests(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"unknown", unhex(t, "0001 61"), ErrUnknownRequest},
		{"too large", unhex(t, "ffff"), ErrTooLarge},
		{"malformed", unhex(t, "0001 7a"), ErrMalformed},
		{"truncated", unhex(t, "0005 7a"), os.ErrDeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs observations
			f := testFace(&obs)
			f.RequestTimeout = 50 * time.Millisecond
			answer, err := serveClient(t, f, tt.wire)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Serve = %v, want %v", err, tt.want)
			}
			if len(answer) != 0 || len(obs.list()) != 0 {
				t.Fatalf("answer %q, observed %q; want nothing", answer, obs.list())
			}
		})
	}
}

// aliveSession sends wire as an ALIVE2_REQ to a face serving under ctx and
// returns the client end after reading the answer, and Serve's result.
func aliveSession(t *testing.T, ctx context.Context, f *Face, wire []byte) (net.Conn, Response, <-chan error) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close() })
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx, server) }()
	if err := client.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(wire); err != nil {
		t.Fatal(err)
	}
	resp, err := ReadAlive2Resp(client)
	if err != nil {
		t.Fatalf("ReadAlive2Resp: %v", err)
	}
	return client, resp, done
}

func TestFaceAlive2(t *testing.T) {
	t.Run("v6 gets ALIVE2_X_RESP and the socket stays open", func(t *testing.T) {
		var obs observations
		f := testFace(&obs)
		// A zero draw is skipped: creation must be non-zero.
		f.Rand = bytes.NewReader(unhex(t, "00000000 01020304"))
		client, resp, done := aliveSession(t, context.Background(), f, unhex(t, capturedAlive2Req))
		if want := (&Alive2XResp{Result: 0, Creation: 0x01020304}); !reflect.DeepEqual(resp, want) {
			t.Fatalf("answer = %#v, want %#v", resp, want)
		}
		// Still registered: the face is reading, so one more byte ends it.
		if _, err := client.Write([]byte{0}); err != nil {
			t.Fatalf("face closed the registration: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrUnexpectedData) {
			t.Fatalf("Serve = %v, want ErrUnexpectedData", err)
		}
		if got := obs.list(); !reflect.DeepEqual(got, []string{"ALIVE2_REQ answered"}) {
			t.Fatalf("Observe = %q", got)
		}
	})
	t.Run("v5 gets ALIVE2_RESP; peer close unregisters", func(t *testing.T) {
		f := &Face{Rand: bytes.NewReader(unhex(t, "0000 0007"))}
		wire := unhex(t, "0010 78 af01 4d 00 0005 0005 0003 656e67 0000")
		client, resp, done := aliveSession(t, context.Background(), f, wire)
		if want := (&Alive2Resp{Result: 0, Creation: 7}); !reflect.DeepEqual(resp, want) {
			t.Fatalf("answer = %#v, want %#v", resp, want)
		}
		client.Close()
		if err := <-done; err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	})
	t.Run("ctx end closes the registration", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		client, _, done := aliveSession(t, ctx, &Face{}, unhex(t, capturedAlive2Req))
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v, want context.Canceled", err)
		}
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("client read = %v, want EOF", err)
		}
	})
	t.Run("Register refuses and releases", func(t *testing.T) {
		taken, released := false, 0
		f := &Face{Register: func(req *Alive2Req) (func(), bool) {
			if taken {
				return nil, false
			}
			taken = true
			return func() { released++ }, true
		}}
		client, resp, done := aliveSession(t, context.Background(), f, unhex(t, capturedAlive2Req))
		if r, ok := resp.(*Alive2XResp); !ok || r.Result != 0 {
			t.Fatalf("first registration: %#v", resp)
		}
		answer, err := serveClient(t, f, unhex(t, capturedAlive2Req))
		if err != nil || !bytes.Equal(answer, []byte{'v', 1, 0, 0, 0, 0}) {
			t.Fatalf("second registration: %v, answer %x; want ALIVE2_X_RESP result 1", err, answer)
		}
		client.Close()
		if err := <-done; err != nil || released != 1 {
			t.Fatalf("Serve = %v, released %d times", err, released)
		}
	})
	t.Run("broken random source", func(t *testing.T) {
		f := &Face{Rand: bytes.NewReader(make([]byte, 64))}
		answer, err := serveClient(t, f, unhex(t, capturedAlive2Req))
		if !errors.Is(err, errNoCreation) || len(answer) != 0 {
			t.Fatalf("Serve = %v, answer %x; want errNoCreation and no answer", err, answer)
		}
	})
}

func TestFaceFirstRequestDeadline(t *testing.T) {
	f := &Face{RequestTimeout: time.Millisecond}
	client, server := net.Pipe()
	defer client.Close()
	err := f.Serve(context.Background(), server)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Serve = %v, want os.ErrDeadlineExceeded", err)
	}
}
