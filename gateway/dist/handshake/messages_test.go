package handshake

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestDigestVector(t *testing.T) {
	// docs/wire.md#digest-and-challenge: md5("c13774219178") = e3eaf24d…cdc2.
	d := Digest(3774219178, "c1")
	got := hex.EncodeToString(d[:])
	if !strings.HasPrefix(got, "e3eaf24d") || !strings.HasSuffix(got, "cdc2") {
		t.Errorf("Digest(3774219178, c1) = %s, want e3eaf24d…cdc2", got)
	}
	if !CheckDigest(d, 3774219178, "c1") || CheckDigest(d, 3774219178, "c2") || CheckDigest(d, 3774219179, "c1") {
		t.Error("CheckDigest disagrees with Digest")
	}
}

func TestNewChallenge(t *testing.T) {
	seen := map[uint32]bool{}
	for range 8 {
		c, err := NewChallenge()
		if err != nil {
			t.Fatal(err)
		}
		seen[c] = true
	}
	if len(seen) < 2 {
		t.Error("NewChallenge returned the same value 8 times")
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range allMessages() {
		t.Run(fmt.Sprintf("%T/%v", m, m), func(t *testing.T) {
			enc := m.Encode(nil)
			got := newMessageLike(m)
			if err := got.Decode(enc); err != nil {
				t.Fatalf("Decode(%q): %v", enc, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(m) {
				t.Errorf("round trip = %v, want %v", got, m)
			}
			// Trailing data: ignored by the 'N' messages and named:,
			// rejected elsewhere.
			err := newMessageLike(m).Decode(append(enc, 0xAA))
			tolerant := false
			switch m := m.(type) {
			case *Name, *Challenge:
				tolerant = true
			case *Status:
				tolerant = m.Code == StatusNamed
			}
			if tolerant != (err == nil) {
				t.Errorf("with trailing byte: err = %v, want tolerant=%v", err, tolerant)
			}
		})
	}
}

func TestNameWireFormat(t *testing.T) {
	// dist_util send_name: <<$N, Flags:64, Creation:32, NameLen:16>>, Name.
	got := (&Name{Flags: 0x0102030405060708, Creation: 0x0a0b0c0d, Name: "a@b"}).Encode(nil)
	want := []byte("N\x01\x02\x03\x04\x05\x06\x07\x08\x0a\x0b\x0c\x0d\x00\x03a@b")
	if !bytes.Equal(got, want) {
		t.Errorf("Encode = %q, want %q", got, want)
	}
	got = (&Status{Code: StatusNamed, Name: "x@h", Creation: 0x01020304}).Encode(nil)
	want = []byte("snamed:\x00\x03x@h\x01\x02\x03\x04")
	if !bytes.Equal(got, want) {
		t.Errorf("named: Encode = %q, want %q", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen) + "@h"
	nameBody := func(flags Flags, name string) []byte {
		return (&Name{Flags: flags, Name: name}).Encode(nil)
	}
	tests := []struct {
		name    string
		msg     Message
		in      []byte
		wantErr error // nil: any *FormatError
	}{
		{"old v5 name", &Name{}, []byte("n\x00\x05\x00\x00\x00\x00a@b"), ErrOldHandshake},
		{"name_me flag", &Name{}, nameBody(ClientFlags|NameMe, "host"), ErrNameMe},
		{"host only", &Name{}, nameBody(ClientFlags, "host"), ErrNameMe},
		{"empty", &Name{}, nil, nil},
		{"short", &Name{}, []byte("N\x00"), nil},
		{"wrong tag", &Name{}, []byte("X\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03a@b"), nil},
		{"name len past end", &Name{}, []byte("N\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09a@b"), nil},
		{"name too long", &Name{}, nameBody(ClientFlags, long), nil},
		{"empty alive", &Name{}, nameBody(ClientFlags, "@h"), nil},
		{"empty host", &Name{}, nameBody(ClientFlags, "a@"), nil},
		{"two @", &Name{}, nameBody(ClientFlags, "a@b@c"), nil},
		{"nul", &Name{}, nameBody(ClientFlags, "a\x00@b"), nil},
		{"newline", &Name{}, nameBody(ClientFlags, "a\n@b"), nil},
		{"bad utf8", &Name{}, nameBody(ClientFlags, "a\xff@b"), nil},
		{"unknown status", &Status{}, []byte("sbogus"), nil},
		{"status with NUL", &Status{}, []byte("sok\x00"), nil},
		{"named: truncated creation", &Status{}, []byte("snamed:\x00\x03x@h\x01\x02"), nil},
		{"named: bad name", &Status{}, []byte("snamed:\x00\x01x\x01\x02\x03\x04"), nil},
		{"status reply other", &StatusReply{}, []byte("smaybe"), nil},
		{"challenge short", &Challenge{}, []byte("N\x00\x00"), nil},
		{"challenge host only", &Challenge{}, (&Challenge{Name: "host"}).Encode(nil), nil},
		{"reply short", &ChallengeReply{}, []byte("r\x00\x00\x00\x01abc"), nil},
		{"reply long", &ChallengeReply{}, append((&ChallengeReply{}).Encode(nil), 0), nil},
		{"ack wrong tag", &ChallengeAck{}, append([]byte("r"), make([]byte, 16)...), nil},
		{"ack short", &ChallengeAck{}, []byte("a\x00"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.msg.Decode(tt.in)
			var fe *FormatError
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("Decode(%q) = %v, want %v", tt.in, err, tt.wantErr)
			case tt.wantErr == nil && !errors.As(err, &fe):
				t.Errorf("Decode(%q) = %v, want a *FormatError", tt.in, err)
			}
		})
	}
}

func TestErrorMessagesGuideTheEngineer(t *testing.T) {
	for _, want := range []string{"'n'", "OTP 23"} {
		if !strings.Contains(ErrOldHandshake.Error(), want) {
			t.Errorf("ErrOldHandshake %q lacks %q", ErrOldHandshake, want)
		}
	}
	for _, want := range []string{"--sname", "--name", "erl -sname", "iex --sname"} {
		if !strings.Contains(ErrNameMe.Error(), want) {
			t.Errorf("ErrNameMe %q lacks %q", ErrNameMe, want)
		}
	}
}

func TestPackets(t *testing.T) {
	var b bytes.Buffer
	if err := WritePacket(&b, []byte("sok")); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "\x00\x03sok" {
		t.Errorf("WritePacket wrote %q", got)
	}
	// Bytes after the packet (e.g. 4-byte frames after the ack) stay unread.
	r := strings.NewReader("\x00\x03sok\x00\x00\x00\x00")
	body, err := ReadPacket(r, make([]byte, 0, 8))
	if err != nil || string(body) != "sok" || r.Len() != 4 {
		t.Errorf("ReadPacket = %q, %v, %d left; want sok, nil, 4", body, err, r.Len())
	}

	var tooLarge *PacketTooLargeError
	tests := []struct {
		name string
		in   string
		ok   func(error) bool
	}{
		{"zero length", "\x00\x00", func(err error) bool { return errors.Is(err, ErrEmptyPacket) }},
		{"oversize", "\x08\x01", func(err error) bool { return errors.As(err, &tooLarge) && tooLarge.Len == 2049 }},
		{"truncated body", "\x00\x05sok", func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"truncated header", "\x00", func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"eof", "", func(err error) bool { return errors.Is(err, io.EOF) }},
	}
	for _, tt := range tests {
		if _, err := ReadPacket(strings.NewReader(tt.in), nil); !tt.ok(err) {
			t.Errorf("%s: ReadPacket(%q) error = %v", tt.name, tt.in, err)
		}
	}
	if err := WritePacket(io.Discard, nil); !errors.Is(err, ErrEmptyPacket) {
		t.Errorf("WritePacket(empty) = %v", err)
	}
	if err := WritePacket(io.Discard, make([]byte, MaxPacket+1)); !errors.As(err, &tooLarge) {
		t.Errorf("WritePacket(oversize) = %v", err)
	}
}
