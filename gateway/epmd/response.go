package epmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Alive2XResp (ALIVE2_X_RESP, 'v') answers an ALIVE2_REQ whose
// HighestVersion is 6 or more. Result 0 means registered.
type Alive2XResp struct {
	Result   uint8
	Creation uint32
}

func (*Alive2XResp) Response() {}

// Decode decodes the body after the 'v' tag.
func (dst *Alive2XResp) Decode(src []byte) error {
	r := reader{msg: "ALIVE2_X_RESP", src: src}
	dst.Result = r.uint8("Result")
	dst.Creation = r.uint32("Creation")
	return r.done()
}

// Encode appends the response.
func (src *Alive2XResp) Encode(dst []byte) ([]byte, error) {
	return appendUint32(append(dst, tagAlive2XResp, src.Result), src.Creation), nil
}

// Alive2Resp (ALIVE2_RESP, 'y') answers an ALIVE2_REQ from a node whose
// HighestVersion is below 6.
type Alive2Resp struct {
	Result   uint8
	Creation uint16
}

func (*Alive2Resp) Response() {}

// Decode decodes the body after the 'y' tag.
func (dst *Alive2Resp) Decode(src []byte) error {
	r := reader{msg: "ALIVE2_RESP", src: src}
	dst.Result = r.uint8("Result")
	dst.Creation = r.uint16("Creation")
	return r.done()
}

// Encode appends the response.
func (src *Alive2Resp) Encode(dst []byte) ([]byte, error) {
	return appendUint16(append(dst, tagAlive2Resp, src.Result), src.Creation), nil
}

// Port2Resp (PORT2_RESP, 'w') answers PORT_PLEASE2_REQ. When Result is not
// zero the node is unknown and no other field is on the wire. Extra aliases
// the buffer passed to Decode.
type Port2Resp struct {
	Result         uint8
	PortNo         uint16
	NodeType       uint8
	Protocol       uint8
	HighestVersion uint16
	LowestVersion  uint16
	Name           string
	Extra          []byte
}

func (*Port2Resp) Response() {}

// Decode decodes the body after the 'w' tag.
func (dst *Port2Resp) Decode(src []byte) error {
	r := reader{msg: "PORT2_RESP", src: src}
	res := r.uint8("Result")
	if r.err != nil {
		return r.err
	}
	if res != 0 {
		*dst = Port2Resp{Result: res}
		return r.done()
	}
	var n nodeInfo
	if err := n.decode(&r); err != nil {
		return err
	}
	*dst = Port2Resp{0, n.PortNo, n.NodeType, n.Protocol, n.HighestVersion, n.LowestVersion, n.Name, n.Extra}
	return nil
}

// Encode appends the response.
func (src *Port2Resp) Encode(dst []byte) ([]byte, error) {
	dst = append(dst, tagPort2Resp, src.Result)
	if src.Result != 0 {
		return dst, nil
	}
	n := nodeInfo{src.PortNo, src.NodeType, src.Protocol, src.HighestVersion, src.LowestVersion, src.Name, src.Extra}
	return n.append("PORT2_RESP", dst)
}

// NameEntry is one line of a NAMES response.
type NameEntry struct {
	Name string // alive name
	Port int    // distribution listen port
}

// NamesResp answers NAMES_REQ: epmd's own port as a 4-byte integer, then
// one text line "name <Name> at port <Port>\n" per node, then close.
type NamesResp struct {
	EPMDPort uint32
	Entries  []NameEntry
}

func (*NamesResp) Response() {}

const (
	namesPrefix = "name "
	namesInfix  = " at port "
)

// Decode decodes a whole NAMES response (it has no tag). It enforces
// MaxNamesResp, MaxNamesLine and MaxNamesEntries.
func (dst *NamesResp) Decode(src []byte) error {
	const msg = "NAMES response"
	if len(src) > MaxNamesResp {
		return &TooLargeError{What: msg, Len: len(src), Limit: MaxNamesResp}
	}
	r := reader{msg: msg, src: src}
	port := r.uint32("EPMDPortNo")
	if r.err != nil {
		return r.err
	}
	text := r.src
	var entries []NameEntry
	for len(text) > 0 {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			return malformed(msg, "last line lacks a newline")
		}
		if i > MaxNamesLine {
			return &TooLargeError{What: "NAMES line", Len: i, Limit: MaxNamesLine}
		}
		if len(entries) == MaxNamesEntries {
			return &TooLargeError{What: "NAMES entry list", Len: len(entries) + 1, Limit: MaxNamesEntries}
		}
		e, err := parseNamesLine(string(text[:i]))
		if err != nil {
			return err
		}
		entries = append(entries, e)
		text = text[i+1:]
	}
	*dst = NamesResp{EPMDPort: port, Entries: entries}
	return nil
}

func parseNamesLine(line string) (NameEntry, error) {
	const msg = "NAMES response"
	rest, ok := strings.CutPrefix(line, namesPrefix)
	i := strings.LastIndex(rest, namesInfix)
	if !ok || i < 0 {
		return NameEntry{}, malformed(msg, fmt.Sprintf("line %q is not \"name N at port P\"", line))
	}
	name, digits := rest[:i], rest[i+len(namesInfix):]
	if err := checkName(msg, name); err != nil {
		return NameEntry{}, err
	}
	port, err := parsePort(digits)
	if err != nil {
		return NameEntry{}, malformed(msg, fmt.Sprintf("line %q: %v", line, err))
	}
	return NameEntry{Name: name, Port: port}, nil
}

// parsePort accepts the canonical decimal form of 0..65535 only, so that a
// decoded response re-encodes to the same bytes.
func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("bad port")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("bad port")
		}
	}
	p, err := strconv.Atoi(s)
	if err != nil || p > 0xffff {
		return 0, errors.New("port out of range")
	}
	return p, nil
}

// Encode appends the response. It fails on an invalid name, a port outside
// 0..65535, or output beyond the limits Decode enforces.
func (src *NamesResp) Encode(dst []byte) ([]byte, error) {
	const msg = "NAMES response"
	if len(src.Entries) > MaxNamesEntries {
		return nil, &TooLargeError{What: "NAMES entry list", Len: len(src.Entries), Limit: MaxNamesEntries}
	}
	start := len(dst)
	dst = appendUint32(dst, src.EPMDPort)
	for _, e := range src.Entries {
		if err := checkName(msg, e.Name); err != nil {
			return nil, err
		}
		if e.Port < 0 || e.Port > 0xffff {
			return nil, malformed(msg, fmt.Sprintf("port %d of %q out of range", e.Port, e.Name))
		}
		dst = append(dst, namesPrefix...)
		dst = append(dst, e.Name...)
		dst = append(dst, namesInfix...)
		dst = strconv.AppendInt(dst, int64(e.Port), 10)
		dst = append(dst, '\n')
	}
	if n := len(dst) - start; n > MaxNamesResp {
		return nil, &TooLargeError{What: msg, Len: n, Limit: MaxNamesResp}
	}
	return dst, nil
}

// readAll reads r until EOF, failing with *TooLargeError once more than
// limit bytes arrive.
func readAll(r io.Reader, what string, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, &TooLargeError{What: what, Len: len(b), Limit: limit}
	}
	return b, nil
}

// ReadPort2Resp reads a PORT2_RESP from r until EOF (epmd closes the
// connection after answering), reading at most the size of the largest
// valid response.
func ReadPort2Resp(r io.Reader) (*Port2Resp, error) {
	b, err := readAll(r, "PORT2_RESP", maxPort2Resp)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	if b[0] != tagPort2Resp {
		return nil, malformed("PORT2_RESP", fmt.Sprintf("tag %d", b[0]))
	}
	resp := new(Port2Resp)
	if err := resp.Decode(b[1:]); err != nil {
		return nil, err
	}
	return resp, nil
}

// ReadNamesResp reads a NAMES response from r until EOF, at most
// MaxNamesResp bytes.
func ReadNamesResp(r io.Reader) (*NamesResp, error) {
	b, err := readAll(r, "NAMES response", MaxNamesResp)
	if err != nil {
		return nil, err
	}
	resp := new(NamesResp)
	if err := resp.Decode(b); err != nil {
		return nil, err
	}
	return resp, nil
}

// ReadAlive2Resp reads the answer to an ALIVE2_REQ: exactly one
// *Alive2XResp or *Alive2Resp. It does not read further, since the
// registration connection stays open.
func ReadAlive2Resp(r io.Reader) (Response, error) {
	var buf [6]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return nil, err
	}
	var (
		resp Response
		n    int
	)
	switch buf[0] {
	case tagAlive2XResp:
		resp, n = new(Alive2XResp), 5
	case tagAlive2Resp:
		resp, n = new(Alive2Resp), 3
	default:
		return nil, malformed("ALIVE2 response", fmt.Sprintf("tag %d", buf[0]))
	}
	if _, err := io.ReadFull(r, buf[1:1+n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if err := resp.Decode(buf[1 : 1+n]); err != nil {
		return nil, err
	}
	return resp, nil
}
