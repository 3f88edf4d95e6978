package dist

import (
	"fmt"
	"math"
	"math/big"

	"beamgate/gateway/dist/term"
)

// Op is a distribution control operation: the first element of every
// control tuple (erts dist.h enum dop).
type Op uint8

// The control operations of docs/wire.md#operations.
const (
	OpLink                Op = 1
	OpSend                Op = 2
	OpExit                Op = 3
	OpUnlink              Op = 4 // obsolete; invalid from OTP 26
	OpNodeLink            Op = 5 // removed; always refused
	OpRegSend             Op = 6
	OpGroupLeader         Op = 7
	OpExit2               Op = 8
	OpSendTT              Op = 12
	OpExitTT              Op = 13
	OpRegSendTT           Op = 16
	OpExit2TT             Op = 18
	OpMonitorP            Op = 19
	OpDemonitorP          Op = 20
	OpMonitorPExit        Op = 21
	OpSendSender          Op = 22
	OpSendSenderTT        Op = 23
	OpPayloadExit         Op = 24
	OpPayloadExitTT       Op = 25
	OpPayloadExit2        Op = 26
	OpPayloadExit2TT      Op = 27
	OpPayloadMonitorPExit Op = 28
	OpSpawnRequest        Op = 29
	OpSpawnRequestTT      Op = 30
	OpSpawnReply          Op = 31
	OpSpawnReplyTT        Op = 32
	OpAliasSend           Op = 33
	OpAliasSendTT         Op = 34
	OpUnlinkID            Op = 35
	OpUnlinkIDAck         Op = 36
	OpAltactSigSend       Op = 37
)

// opInfo describes one operation: its protocol name, whether a payload
// term follows the control tuple, and a constructor for its Go type.
type opInfo struct {
	name    string
	payload bool
	make    func() Control
}

var ops = [...]opInfo{
	OpLink:                {"LINK", false, func() Control { return new(Link) }},
	OpSend:                {"SEND", true, func() Control { return new(Send) }},
	OpExit:                {"EXIT", false, func() Control { return new(Exit) }},
	OpUnlink:              {"UNLINK", false, func() Control { return new(Unlink) }},
	OpNodeLink:            {"NODE_LINK", false, nil},
	OpRegSend:             {"REG_SEND", true, func() Control { return new(RegSend) }},
	OpGroupLeader:         {"GROUP_LEADER", false, func() Control { return new(GroupLeader) }},
	OpExit2:               {"EXIT2", false, func() Control { return new(Exit2) }},
	OpSendTT:              {"SEND_TT", true, func() Control { return new(SendTT) }},
	OpExitTT:              {"EXIT_TT", false, func() Control { return new(ExitTT) }},
	OpRegSendTT:           {"REG_SEND_TT", true, func() Control { return new(RegSendTT) }},
	OpExit2TT:             {"EXIT2_TT", false, func() Control { return new(Exit2TT) }},
	OpMonitorP:            {"MONITOR_P", false, func() Control { return new(MonitorP) }},
	OpDemonitorP:          {"DEMONITOR_P", false, func() Control { return new(DemonitorP) }},
	OpMonitorPExit:        {"MONITOR_P_EXIT", false, func() Control { return new(MonitorPExit) }},
	OpSendSender:          {"SEND_SENDER", true, func() Control { return new(SendSender) }},
	OpSendSenderTT:        {"SEND_SENDER_TT", true, func() Control { return new(SendSenderTT) }},
	OpPayloadExit:         {"PAYLOAD_EXIT", true, func() Control { return new(PayloadExit) }},
	OpPayloadExitTT:       {"PAYLOAD_EXIT_TT", true, func() Control { return new(PayloadExitTT) }},
	OpPayloadExit2:        {"PAYLOAD_EXIT2", true, func() Control { return new(PayloadExit2) }},
	OpPayloadExit2TT:      {"PAYLOAD_EXIT2_TT", true, func() Control { return new(PayloadExit2TT) }},
	OpPayloadMonitorPExit: {"PAYLOAD_MONITOR_P_EXIT", true, func() Control { return new(PayloadMonitorPExit) }},
	OpSpawnRequest:        {"SPAWN_REQUEST", true, func() Control { return new(SpawnRequest) }},
	OpSpawnRequestTT:      {"SPAWN_REQUEST_TT", true, func() Control { return new(SpawnRequestTT) }},
	OpSpawnReply:          {"SPAWN_REPLY", false, func() Control { return new(SpawnReply) }},
	OpSpawnReplyTT:        {"SPAWN_REPLY_TT", false, func() Control { return new(SpawnReplyTT) }},
	OpAliasSend:           {"ALIAS_SEND", true, func() Control { return new(AliasSend) }},
	OpAliasSendTT:         {"ALIAS_SEND_TT", true, func() Control { return new(AliasSendTT) }},
	OpUnlinkID:            {"UNLINK_ID", false, func() Control { return new(UnlinkID) }},
	OpUnlinkIDAck:         {"UNLINK_ID_ACK", false, func() Control { return new(UnlinkIDAck) }},
	OpAltactSigSend:       {"ALTACT_SIG_SEND", true, func() Control { return new(AltactSigSend) }},
}

func (op Op) info() (opInfo, bool) {
	if int(op) >= len(ops) || ops[op].name == "" {
		return opInfo{}, false
	}
	return ops[op], true
}

// String returns the protocol name of op, such as "SPAWN_REQUEST", or
// "OP(n)" for an unknown operation.
func (op Op) String() string {
	if in, ok := op.info(); ok {
		return in.name
	}
	return fmt.Sprintf("OP(%d)", uint8(op))
}

// HasPayload reports whether a payload term follows op's control tuple.
func (op Op) HasPayload() bool {
	in, _ := op.info()
	return in.payload
}

// Control is one decoded control tuple. The concrete types are pointers to
// the structs in the control_*.go files (*Link, *SpawnRequest, ...), so
// policy code type-switches on them.
type Control interface {
	// Op returns the operation.
	Op() Op
	// Tuple returns the control tuple to encode, operation first.
	Tuple() term.Tuple
	// HasPayload reports whether a payload term follows the tuple.
	HasPayload() bool
	// Decode fills the message from a control tuple, checking the
	// operation, the arity and every element's type. It returns a
	// *ControlError on mismatch. Decoded fields alias t's elements.
	Decode(t term.Tuple) error
}

// NewControl returns an empty control message of operation op, or an
// *UnknownOpError.
func NewControl(op Op) (Control, error) {
	in, ok := op.info()
	if !ok || in.make == nil {
		return nil, &UnknownOpError{Op: op}
	}
	return in.make(), nil
}

// DecodeControlTuple decodes a control tuple into its Go type.
func DecodeControlTuple(t term.Term) (Control, error) {
	tp, ok := t.(term.Tuple)
	if !ok {
		return nil, &ControlError{Reason: fmt.Sprintf("not a tuple: %s", describe(t))}
	}
	if len(tp) == 0 {
		return nil, &ControlError{Reason: "empty tuple"}
	}
	n, ok := tp[0].(term.Int)
	if !ok || n < 0 || n > math.MaxUint8 {
		return nil, &ControlError{Elem: 1, Reason: fmt.Sprintf("operation is %s, not a small integer", describe(tp[0]))}
	}
	c, err := NewControl(Op(n))
	if err != nil {
		return nil, err
	}
	if err := c.Decode(tp); err != nil {
		return nil, err
	}
	return c, nil
}

// Message is one non-tick frame: a control message and, for the operations
// that carry one, its payload (the message, exit reason or spawn argument
// list).
type Message struct {
	Control Control
	Payload term.Term // nil when the operation has none
}

// DecodeControl decodes only the control tuple of a frame body returned by
// FrameReader.Next. payloadOff is the offset of the payload's 131 byte, or
// len(frame) when the operation has no payload. The payload is not
// decoded; a missing or unexpected payload is still an error.
func DecodeControl(frame []byte, lim *term.Limits) (ctrl Control, payloadOff int, err error) {
	if len(frame) == 0 {
		return nil, 0, &FrameError{Kind: ErrNotPassThrough, Detail: "empty frame (a tick)"}
	}
	if frame[0] != PassThrough {
		if frame[0] == VersionMagic && len(frame) > 1 && isDistHeaderTag(frame[1]) {
			return nil, 0, &FrameError{Kind: ErrDistHeader, Off: 1, Detail: fmt.Sprintf("tag %d", frame[1])}
		}
		return nil, 0, &FrameError{Kind: ErrNotPassThrough, Detail: fmt.Sprintf("first byte %d", frame[0])}
	}
	t, n, err := decodeTerm(frame, 1, lim, 0)
	if err != nil {
		return nil, 0, err
	}
	ctrl, err = DecodeControlTuple(t)
	if err != nil {
		return nil, 0, err
	}
	off := 1 + n
	switch {
	case ctrl.HasPayload() && off == len(frame):
		return nil, 0, &FrameError{Kind: ErrMissingPayload, Op: ctrl.Op(), Off: off}
	case !ctrl.HasPayload() && off != len(frame):
		return nil, 0, &FrameError{Kind: ErrUnexpectedPayload, Op: ctrl.Op(), Off: off,
			Detail: fmt.Sprintf("%d bytes", len(frame)-off)}
	case ctrl.HasPayload() && frame[off] != VersionMagic:
		return nil, 0, &FrameError{Kind: ErrBadVersion, Op: ctrl.Op(), Off: off,
			Detail: fmt.Sprintf("byte %d", frame[off])}
	}
	return ctrl, off, nil
}

// DecodeFrame decodes a frame body returned by FrameReader.Next (it starts
// with 112): the control message and, when the operation carries one, the
// payload, which must end the frame exactly.
func DecodeFrame(frame []byte, lim *term.Limits) (Message, error) {
	ctrl, off, err := DecodeControl(frame, lim)
	if err != nil {
		return Message{}, err
	}
	m := Message{Control: ctrl}
	if !ctrl.HasPayload() {
		return m, nil
	}
	p, n, err := decodeTerm(frame, off, lim, ctrl.Op())
	if err != nil {
		return Message{}, err
	}
	if off+n != len(frame) {
		return Message{}, &FrameError{Kind: ErrTrailingBytes, Op: ctrl.Op(), Off: off + n,
			Detail: fmt.Sprintf("%d bytes", len(frame)-off-n)}
	}
	m.Payload = p
	return m, nil
}

// decodeTerm decodes the term starting at frame[off] (its 131 byte).
func decodeTerm(frame []byte, off int, lim *term.Limits, op Op) (term.Term, int, error) {
	if off >= len(frame) || frame[off] != VersionMagic {
		d := "end of frame"
		if off < len(frame) {
			d = fmt.Sprintf("byte %d", frame[off])
		}
		return nil, 0, &FrameError{Kind: ErrBadVersion, Op: op, Off: off, Detail: d}
	}
	t, n, err := term.Decode(frame[off:], lim)
	if err != nil {
		return nil, 0, &FrameError{Kind: ErrBadTerm, Op: op, Off: off, Err: err}
	}
	return t, n, nil
}

// AppendMessage appends the frame body of m (112, the control tuple and the
// payload, each term with its 131) to dst. It refuses a message whose
// payload presence does not match its operation.
func AppendMessage(dst []byte, m Message) ([]byte, error) {
	if m.Control == nil {
		return dst, fmt.Errorf("dist: message without control")
	}
	if m.Control.HasPayload() != (m.Payload != nil) {
		return dst, fmt.Errorf("dist: %s: payload present = %t, want %t",
			m.Control.Op(), m.Payload != nil, m.Control.HasPayload())
	}
	out := append(dst, PassThrough)
	out, err := term.Append(out, m.Control.Tuple())
	if err != nil {
		return dst, fmt.Errorf("dist: encoding %s control: %w", m.Control.Op(), err)
	}
	if m.Payload != nil {
		out, err = term.Append(out, m.Payload)
		if err != nil {
			return dst, fmt.Errorf("dist: encoding %s payload: %w", m.Control.Op(), err)
		}
	}
	return out, nil
}

// AppendMessageFrame appends m as a complete frame, 4-byte length included.
func AppendMessageFrame(dst []byte, m Message) ([]byte, error) {
	start := len(dst)
	out, err := AppendMessage(append(dst, 0, 0, 0, 0), m)
	if err != nil {
		return dst, err
	}
	n := len(out) - start - 4
	if uint64(n) > math.MaxUint32 {
		return dst, fmt.Errorf("dist: %s frame of %d bytes is too large", m.Control.Op(), n)
	}
	out[start], out[start+1], out[start+2], out[start+3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return out, nil
}

// String returns a one-line rendering of m for logs, each term shortened
// by term.Format.
func (m Message) String() string {
	if m.Control == nil {
		return "<no control>"
	}
	s := m.Control.Op().String() + " " + term.Format(m.Control.Tuple(), 512)
	if m.Payload != nil {
		s += " + " + term.Format(m.Payload, 512)
	}
	return s
}

// Equal reports whether m and o are the same message.
func (m Message) Equal(o Message) bool {
	if m.Control == nil || o.Control == nil {
		return m.Control == nil && o.Control == nil
	}
	if !term.Equal(m.Control.Tuple(), o.Control.Tuple()) {
		return false
	}
	if m.Payload == nil || o.Payload == nil {
		return m.Payload == nil && o.Payload == nil
	}
	return term.Equal(m.Payload, o.Payload)
}

// Element checks used by every Decode method. An elems value records the
// first failure; later calls are no-ops and return zero values.

type elems struct {
	op  Op
	t   term.Tuple
	err *ControlError
}

// open checks that t is a control tuple of op with one of the allowed
// arities (counting the operation itself).
func open(t term.Tuple, op Op, arities ...int) (*elems, error) {
	d := &elems{op: op, t: t}
	if len(t) == 0 {
		return nil, &ControlError{Op: op, Reason: "empty tuple"}
	}
	if n, ok := t[0].(term.Int); !ok || n != term.Int(op) {
		return nil, &ControlError{Op: op, Elem: 1, Reason: fmt.Sprintf("operation is %s", describe(t[0]))}
	}
	for _, a := range arities {
		if len(t) == a {
			return d, nil
		}
	}
	return nil, &ControlError{Op: op, Reason: fmt.Sprintf("arity %d, want %v", len(t), arities)}
}

func (d *elems) fail(i int, want string) {
	if d.err == nil {
		d.err = &ControlError{Op: d.op, Elem: i + 1, Reason: fmt.Sprintf("want %s, got %s", want, describe(d.t[i]))}
	}
}

// done returns the first failure as an error (nil if none).
func (d *elems) done() error {
	if d.err == nil {
		return nil
	}
	return d.err
}

// elem returns element i as a T, recording a failure if it is not one.
func elem[T term.Term](d *elems, i int, want string) T {
	v, ok := d.t[i].(T)
	if !ok {
		d.fail(i, want)
	}
	return v
}

func (d *elems) pid(i int) term.Pid   { return elem[term.Pid](d, i, "pid") }
func (d *elems) ref(i int) term.Ref   { return elem[term.Ref](d, i, "reference") }
func (d *elems) atom(i int) term.Atom { return elem[term.Atom](d, i, "atom") }

// refTerm is ref for fields typed term.Term (request ids).
func (d *elems) refTerm(i int) term.Term {
	d.ref(i)
	return d.t[i]
}

// proc accepts a pid or an atom (a registered name).
func (d *elems) proc(i int) term.Term {
	switch d.t[i].(type) {
	case term.Pid, term.Atom:
	default:
		d.fail(i, "pid or atom")
	}
	return d.t[i]
}

// small accepts an integer in [lo, hi].
func (d *elems) small(i int, lo, hi int64) int64 {
	n, ok := d.t[i].(term.Int)
	if !ok || int64(n) < lo || int64(n) > hi {
		d.fail(i, fmt.Sprintf("integer %d..%d", lo, hi))
		return 0
	}
	return int64(n)
}

// id accepts an unlink id, 1..2^64-1.
func (d *elems) id(i int) uint64 {
	switch n := d.t[i].(type) {
	case term.Int:
		if n > 0 {
			return uint64(n)
		}
	case term.Big:
		if n.V != nil && n.V.Sign() > 0 && n.V.BitLen() <= 64 {
			return n.V.Uint64()
		}
	}
	d.fail(i, "integer 1..2^64-1")
	return 0
}

// uint64Term encodes v as an integer term.
func uint64Term(v uint64) term.Term {
	if v <= math.MaxInt64 {
		return term.Int(v)
	}
	return term.Big{V: new(big.Int).SetUint64(v)}
}

// describe names a term's type for error messages without echoing
// (possibly large, possibly sensitive) contents.
func describe(t term.Term) string {
	switch v := t.(type) {
	case nil:
		return "nothing"
	case term.Atom:
		return "atom"
	case term.Int, term.Big:
		return "integer"
	case term.Float:
		return "float"
	case term.Binary, term.BitBinary:
		return "binary"
	case term.String, term.Nil, term.List:
		return "list"
	case term.Tuple:
		return fmt.Sprintf("%d-tuple", len(v))
	case term.Map:
		return "map"
	case term.Pid:
		return "pid"
	case term.Port:
		return "port"
	case term.Ref:
		return "reference"
	case term.Fun, term.Export:
		return "fun"
	}
	return fmt.Sprintf("%T", t)
}
