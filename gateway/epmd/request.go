package epmd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Alive2Req (ALIVE2_REQ, 'x') registers a node with epmd. Extra aliases the
// buffer passed to Decode.
type Alive2Req struct {
	PortNo         uint16 // the node's distribution listen port
	NodeType       uint8  // 77 'M' for OTP nodes (hidden ones too), 72 'H' for C nodes
	Protocol       uint8  // 0 = TCP/IPv4
	HighestVersion uint16
	LowestVersion  uint16
	Name           string // alive name, without host
	Extra          []byte
}

func (*Alive2Req) Request()       {}
func (*Alive2Req) String() string { return "ALIVE2_REQ" }

// Decode decodes the body after the 'x' tag.
func (dst *Alive2Req) Decode(src []byte) error {
	var n nodeInfo
	if err := n.decode(&reader{msg: dst.String(), src: src}); err != nil {
		return err
	}
	*dst = Alive2Req(n)
	return nil
}

// Encode appends the framed request.
func (src *Alive2Req) Encode(dst []byte) ([]byte, error) {
	dst, sp := beginRequest(dst, tagAlive2Req)
	n := nodeInfo(*src)
	dst, err := n.append(src.String(), dst)
	if err != nil {
		return nil, err
	}
	return finishRequest(src.String(), dst, sp)
}

// PortPlease2Req (PORT_PLEASE2_REQ, 'z') asks where the node with the given
// alive name listens. The name fills the rest of the request.
type PortPlease2Req struct{ Name string }

func (*PortPlease2Req) Request()       {}
func (*PortPlease2Req) String() string { return "PORT_PLEASE2_REQ" }

// Decode decodes the body after the 'z' tag.
func (dst *PortPlease2Req) Decode(src []byte) error {
	return decodeNamed(dst.String(), src, &dst.Name)
}

// Encode appends the framed request.
func (src *PortPlease2Req) Encode(dst []byte) ([]byte, error) {
	return encodeNamed(src.String(), dst, tagPortPlease2Req, src.Name)
}

// StopReq (STOP_REQ, 's') asks epmd to forget a node. The gateway refuses it.
type StopReq struct{ Name string }

func (*StopReq) Request()       {}
func (*StopReq) String() string { return "STOP_REQ" }

// Decode decodes the body after the 's' tag.
func (dst *StopReq) Decode(src []byte) error { return decodeNamed(dst.String(), src, &dst.Name) }

// Encode appends the framed request.
func (src *StopReq) Encode(dst []byte) ([]byte, error) {
	return encodeNamed(src.String(), dst, tagStopReq, src.Name)
}

func decodeNamed(msg string, src []byte, name *string) error {
	if err := checkName(msg, string(src)); err != nil {
		return err
	}
	*name = string(src)
	return nil
}

func encodeNamed(msg string, dst []byte, tag byte, name string) ([]byte, error) {
	if err := checkName(msg, name); err != nil {
		return nil, err
	}
	dst, sp := beginRequest(dst, tag)
	return finishRequest(msg, append(dst, name...), sp)
}

// NamesReq (NAMES_REQ, 'n') lists the registered nodes.
type NamesReq struct{}

// DumpReq (DUMP_REQ, 'd') dumps epmd's tables. The gateway refuses it.
type DumpReq struct{}

// KillReq (KILL_REQ, 'k') stops epmd. The gateway refuses it.
type KillReq struct{}

func (*NamesReq) Request() {}
func (*DumpReq) Request()  {}
func (*KillReq) Request()  {}

func (*NamesReq) String() string { return "NAMES_REQ" }
func (*DumpReq) String() string  { return "DUMP_REQ" }
func (*KillReq) String() string  { return "KILL_REQ" }

// Decode requires an empty body after the 'n' tag.
func (dst *NamesReq) Decode(src []byte) error { return decodeEmpty(dst.String(), src) }

// Decode requires an empty body after the 'd' tag.
func (dst *DumpReq) Decode(src []byte) error { return decodeEmpty(dst.String(), src) }

// Decode requires an empty body after the 'k' tag.
func (dst *KillReq) Decode(src []byte) error { return decodeEmpty(dst.String(), src) }

// Encode appends the framed request.
func (src *NamesReq) Encode(dst []byte) ([]byte, error) { return encodeEmpty(dst, tagNamesReq), nil }

// Encode appends the framed request.
func (src *DumpReq) Encode(dst []byte) ([]byte, error) { return encodeEmpty(dst, tagDumpReq), nil }

// Encode appends the framed request.
func (src *KillReq) Encode(dst []byte) ([]byte, error) { return encodeEmpty(dst, tagKillReq), nil }

func decodeEmpty(msg string, src []byte) error {
	if len(src) != 0 {
		return malformed(msg, fmt.Sprintf("%d trailing bytes", len(src)))
	}
	return nil
}

func encodeEmpty(dst []byte, tag byte) []byte { return append(dst, 0, 1, tag) }

// ReadRequest reads one framed request: a 2-byte big-endian length, then
// that many bytes starting with the request tag. A length of zero or one
// above MaxRequest is rejected before the body is read (*TooLargeError for
// the latter); an unknown tag yields *UnknownRequestError; a body that does
// not decode yields *FormatError. A clean EOF before the length is io.EOF;
// a truncated request is io.ErrUnexpectedEOF.
func ReadRequest(r io.Reader) (Request, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	switch {
	case n == 0:
		return nil, malformed("request", "zero length")
	case n > MaxRequest:
		return nil, &TooLargeError{What: "request", Len: n, Limit: MaxRequest}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	var req Request
	switch body[0] {
	case tagAlive2Req:
		req = new(Alive2Req)
	case tagPortPlease2Req:
		req = new(PortPlease2Req)
	case tagNamesReq:
		req = new(NamesReq)
	case tagDumpReq:
		req = new(DumpReq)
	case tagKillReq:
		req = new(KillReq)
	case tagStopReq:
		req = new(StopReq)
	default:
		return nil, &UnknownRequestError{Tag: body[0]}
	}
	if err := req.Decode(body[1:]); err != nil {
		return nil, err
	}
	return req, nil
}
