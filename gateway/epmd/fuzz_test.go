package epmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// Seeds shared by the fuzz targets besides the files in testdata/fuzz.
func addRequestSeeds(f *testing.F) {
	for _, s := range []string{
		capturedAlive2Req,
		capturedPortPlease2,
		"0010 78 af01 4d 00 0005 0005 0003 656e67 0000", // version-5 node
		"0007 7a 736563726574",                          // "secret"
		"0001 6e", "0001 64", "0001 6b", "0005 73 70726f64",
		"0001 61", "ffff", "0000", "0005 7a",
		capturedAlive2Req + " 00", // trailing byte on a registration
	} {
		f.Add(unhex(f, s))
	}
}

func FuzzReadRequest(f *testing.F) {
	addRequestSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ReadRequest(bytes.NewReader(data))
		if err != nil {
			if req != nil {
				t.Fatalf("ReadRequest returned %#v with error %v", req, err)
			}
			return
		}
		n := 2 + (int(data[0])<<8 | int(data[1]))
		enc, err := req.Encode(nil)
		if err != nil {
			t.Fatalf("accepted %#v does not encode: %v", req, err)
		}
		if !bytes.Equal(enc, data[:n]) {
			t.Fatalf("%#v re-encodes to %x, read from %x", req, enc, data[:n])
		}
	})
}

func FuzzFace(f *testing.F) {
	addRequestSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		face := &Face{
			Lookup: func(alive string) (uint16, bool) { return 9200, alive == "prod" },
			Names:  func() []NameEntry { return []NameEntry{{Name: "prod", Port: 9200}} },
			Observe: func(req Request, outcome string) {
				if req == nil || outcome == "" {
					t.Errorf("Observe(%v, %q)", req, outcome)
				}
			},
			RequestTimeout: time.Second,
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		client, server := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- face.Serve(ctx, server) }()
		go io.Copy(io.Discard, client) // ends when either side closes
		client.SetDeadline(time.Now().Add(5 * time.Second))
		client.Write(data)
		client.Close()

		var serveErr error
		select {
		case serveErr = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Serve hung")
		}
		_, readErr := ReadRequest(bytes.NewReader(data))
		if serveErr == nil && readErr != nil {
			t.Fatalf("Serve accepted what ReadRequest rejects: %v", readErr)
		}
		for _, typed := range []error{ErrUnknownRequest, ErrTooLarge, ErrMalformed} {
			if errors.Is(readErr, typed) && !errors.Is(serveErr, typed) {
				t.Fatalf("Serve = %v, want %v", serveErr, typed)
			}
		}
	})
}

func FuzzClientResponses(f *testing.F) {
	for _, s := range []string{
		capturedPort2Resp,
		"77 01",
		"77 00 23f0 4d 00 0006 0005 0004 70726f64 0002 abcd",
		"00001111",
		"00001111 " + hexOf("name prod at port 9200\nname eng at port 44801\n"),
		"00001111 " + hexOf("name x at port 1 at port 2\n"),
		"76 00 01020304",
		"79 00 0102",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := ReadPort2Resp(bytes.NewReader(data)); err == nil {
			enc, err := p.Encode(nil)
			if err != nil || !bytes.Equal(enc, data) {
				t.Fatalf("PORT2_RESP %#v re-encodes to %x, %v; read from %x", p, enc, err, data)
			}
		}
		if n, err := ReadNamesResp(bytes.NewReader(data)); err == nil {
			enc, err := n.Encode(nil)
			if err != nil || !bytes.Equal(enc, data) {
				t.Fatalf("NAMES %#v re-encodes to %q, %v; read from %q", n, enc, err, data)
			}
		}
		if a, err := ReadAlive2Resp(bytes.NewReader(data)); err == nil {
			enc, err := a.Encode(nil)
			if err != nil || !bytes.HasPrefix(data, enc) {
				t.Fatalf("ALIVE2 answer %#v re-encodes to %x, %v; read from %x", a, enc, err, data)
			}
		}
	})
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		b = append(b, digits[s[i]>>4], digits[s[i]&15])
	}
	return string(b)
}
