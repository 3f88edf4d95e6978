package epmd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Bytes captured from OTP 25.2.3 (docs/wire.md#requests-the-face-answers).
const (
	capturedAlive2Req   = "0010 78 af01 4d 00 0006 0005 0003 656e67 0000" // framed
	capturedPortPlease2 = "0005 7a 70726f64"                              // framed
	capturedPort2Resp   = "77 00 23f0 4d 00 0006 0005 0004 70726f64 0000"
)

func TestReadRequestCaptured(t *testing.T) {
	tests := []struct {
		name string
		wire string
		want Request
	}{
		{"alive2", capturedAlive2Req, &Alive2Req{PortNo: 44801, NodeType: 77, Protocol: 0, HighestVersion: 6, LowestVersion: 5, Name: "eng", Extra: []byte{}}},
		{"port_please2", capturedPortPlease2, &PortPlease2Req{Name: "prod"}},
		{"names", "0001 6e", &NamesReq{}},
		{"dump", "0001 64", &DumpReq{}},
		{"kill", "0001 6b", &KillReq{}},
		{"stop", "0005 73 70726f64", &StopReq{Name: "prod"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := unhex(t, tt.wire)
			got, err := ReadRequest(bytes.NewReader(wire))
			if err != nil {
				t.Fatalf("ReadRequest: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ReadRequest = %#v, want %#v", got, tt.want)
			}
			enc, err := got.Encode(nil)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(enc, wire) {
				t.Fatalf("Encode = %x, want %x", enc, wire)
			}
		})
	}
}

func TestPort2RespCaptured(t *testing.T) {
	wire := unhex(t, capturedPort2Resp)
	want := &Port2Resp{Result: 0, PortNo: 9200, NodeType: 77, Protocol: 0, HighestVersion: 6, LowestVersion: 5, Name: "prod", Extra: []byte{}}
	got, err := ReadPort2Resp(bytes.NewReader(wire))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadPort2Resp = %#v, want %#v", got, want)
	}
	enc, err := want.Encode(nil)
	if err != nil || !bytes.Equal(enc, wire) {
		t.Fatalf("Encode = %x, %v; want %x", enc, err, wire)
	}

	notFound, err := ReadPort2Resp(bytes.NewReader([]byte{'w', 1}))
	if err != nil || notFound.Result != 1 {
		t.Fatalf("ReadPort2Resp(w 1) = %#v, %v", notFound, err)
	}
}

func TestAlive2Responses(t *testing.T) {
	tests := []struct {
		resp Response
		wire string
	}{
		{&Alive2XResp{Result: 0, Creation: 0x01020304}, "76 00 01020304"},
		{&Alive2Resp{Result: 0, Creation: 0x0102}, "79 00 0102"},
		{&Alive2XResp{Result: 1, Creation: 99}, "76 01 00000063"},
	}
	for _, tt := range tests {
		enc, err := tt.resp.Encode(nil)
		if err != nil || !bytes.Equal(enc, unhex(t, tt.wire)) {
			t.Errorf("Encode(%#v) = %x, %v; want %s", tt.resp, enc, err, tt.wire)
		}
		// Trailing bytes stay unread: the registration socket stays open.
		r := bytes.NewReader(append(enc, 0xff))
		got, err := ReadAlive2Resp(r)
		if err != nil || !reflect.DeepEqual(got, tt.resp) || r.Len() != 1 {
			t.Errorf("ReadAlive2Resp = %#v, %v (left %d); want %#v", got, err, r.Len(), tt.resp)
		}
	}
	if _, err := ReadAlive2Resp(bytes.NewReader([]byte{'v', 0, 1})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated ALIVE2_X_RESP: err = %v, want ErrUnexpectedEOF", err)
	}
	if _, err := ReadAlive2Resp(bytes.NewReader([]byte{'q', 0, 1})); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad tag: err = %v, want ErrMalformed", err)
	}
}

func TestNamesResp(t *testing.T) {
	wire := append(unhex(t, "00001111"), "name prod at port 9200\nname a b at port 0\n"...)
	want := &NamesResp{EPMDPort: 4369, Entries: []NameEntry{{"prod", 9200}, {"a b", 0}}}
	got, err := ReadNamesResp(bytes.NewReader(wire))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadNamesResp = %#v, %v; want %#v", got, err, want)
	}
	enc, err := want.Encode(nil)
	if err != nil || !bytes.Equal(enc, wire) {
		t.Fatalf("Encode = %q, %v", enc, err)
	}
	empty, err := ReadNamesResp(bytes.NewReader(unhex(t, "00001111")))
	if err != nil || empty.EPMDPort != 4369 || len(empty.Entries) != 0 {
		t.Fatalf("empty NAMES = %#v, %v", empty, err)
	}
}

func TestNamesRespBounds(t *testing.T) {
	port := []byte{0, 0, 0x11, 0x11}
	many := bytes.Repeat([]byte("name a at port 1\n"), MaxNamesEntries+1)
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"short port", []byte{0, 0}, ErrMalformed},
		{"no newline", append(port, "name a at port 1"...), ErrMalformed},
		{"garbage line", append(port, "hello\n"...), ErrMalformed},
		{"bad port", append(port, "name a at port 65536\n"...), ErrMalformed},
		{"leading zero", append(port, "name a at port 01\n"...), ErrMalformed},
		{"empty name", append(port, "name  at port 1\n"...), ErrMalformed},
		{"long line", append(port, "name "+strings.Repeat("a", MaxNamesLine)+" at port 1\n"...), ErrTooLarge},
		{"too many entries", append(port, many...), ErrTooLarge},
		{"too many bytes", append(port, bytes.Repeat([]byte("x"), MaxNamesResp)...), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadNamesResp(bytes.NewReader(tt.wire)); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadRequestRejects(t *testing.T) {
	tests := []struct {
		name string
		wire string
		want error
	}{
		{"empty stream", "", io.EOF},
		{"half length", "00", io.ErrUnexpectedEOF},
		{"truncated body", "0005 7a70", io.ErrUnexpectedEOF},
		{"zero length", "0000", ErrMalformed},
		{"too large", "0401", ErrTooLarge},
		{"unknown tag", "0001 61", ErrUnknownRequest},
		{"old PORT_PLEASE", "0002 70 61", ErrUnknownRequest},
		{"empty name", "0001 7a", ErrMalformed},
		{"at in name", "0005 7a 7040686f", ErrMalformed},
		{"newline in name", "0003 7a 610a", ErrMalformed},
		{"bad utf8", "0002 7a ff", ErrMalformed},
		{"names trailing", "0002 6e 00", ErrMalformed},
		{"alive2 trailing", "0011 78 af01 4d 00 0006 0005 0003 656e67 0000 00", ErrMalformed},
		{"alive2 short name", "0010 78 af01 4d 00 0006 0005 0009 656e67 0000", ErrMalformed},
		{"alive2 extra too long", "0010 78 af01 4d 00 0006 0005 0003 656e67 ffff", ErrMalformed},
		{"alive2 truncated header", "0003 78 af01", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadRequest(bytes.NewReader(unhex(t, tt.wire)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	var tl *TooLargeError
	if _, err := ReadRequest(bytes.NewReader(unhex(t, "ffff"))); !errors.As(err, &tl) || tl.Len != 0xffff {
		t.Fatalf("err = %v, want *TooLargeError{Len: 65535}", err)
	}
	var ue *UnknownRequestError
	if _, err := ReadRequest(bytes.NewReader(unhex(t, "0001 61"))); !errors.As(err, &ue) || ue.Tag != 'a' {
		t.Fatalf("err = %v, want *UnknownRequestError{Tag: 'a'}", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	long := strings.Repeat("a", MaxName+1)
	tests := []struct {
		name string
		msg  interface{ Encode([]byte) ([]byte, error) }
	}{
		{"empty port_please", &PortPlease2Req{}},
		{"long port_please", &PortPlease2Req{Name: long}},
		{"at in alive2", &Alive2Req{Name: "a@b"}},
		{"long extra", &Alive2Req{Name: "a", Extra: make([]byte, MaxExtra+1)}},
		{"bad names port", &NamesResp{Entries: []NameEntry{{"a", 70000}}}},
		{"bad names name", &NamesResp{Entries: []NameEntry{{"a\nname b", 1}}}},
		{"port2 no name", &Port2Resp{}},
	}
	for _, tt := range tests {
		if b, err := tt.msg.Encode(nil); err == nil {
			t.Errorf("%s: Encode = %x, want error", tt.name, b)
		}
	}
}
