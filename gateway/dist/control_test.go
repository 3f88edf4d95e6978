package dist

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"testing"

	"beamgate/gateway/dist/term"
)

func testPid(node term.Atom, id uint32) term.Pid {
	return term.Pid{Node: node, ID: id, Serial: 0, Creation: 1700000001}
}

func testRef(node term.Atom, w uint32) term.Ref {
	return term.Ref{Node: node, Creation: 1700000001, ID: []uint32{w, 0x1234, 0x5678}}
}

var (
	engPid  = testPid("eng@127.0.0.3", 85)
	prodPid = testPid("prod@127.0.0.2", 92)
	engRef  = testRef("eng@127.0.0.3", 7)
	token   = term.Tuple{term.Int(0), term.Atom("label"), term.Int(1), engPid, term.Int(3)}
	reason  = term.Tuple{term.Atom("badarg"), term.Nil{}}
)

// allMessages holds one message of every operation, shaped after
// docs/wire.md#operations and #typical-exchanges.
func allMessages() []Message {
	gcall := term.Tuple{term.Atom("$gen_call"),
		term.Tuple{engPid, term.List{Elems: []term.Term{term.Atom("alias")}, Tail: engRef}},
		term.Tuple{term.Atom("is_auth"), term.Atom("eng@127.0.0.3")}}
	return []Message{
		{Control: &Link{From: engPid, To: prodPid}},
		{Control: &Send{Unused: term.EmptyAtom, To: prodPid}, Payload: term.Atom("hello")},
		{Control: &Exit{From: engPid, To: prodPid, Reason: reason}},
		{Control: &Unlink{From: engPid, To: prodPid}},
		{Control: &RegSend{From: engPid, Unused: term.EmptyAtom, ToName: "net_kernel"}, Payload: gcall},
		{Control: &GroupLeader{Leader: engPid, To: prodPid}},
		{Control: &Exit2{From: engPid, To: prodPid, Reason: term.Atom("kill")}},
		{Control: &SendTT{Unused: term.EmptyAtom, To: prodPid, Token: token}, Payload: term.Int(1)},
		{Control: &ExitTT{From: engPid, To: prodPid, Token: token, Reason: reason}},
		{Control: &RegSendTT{From: engPid, Unused: term.EmptyAtom, ToName: "rex", Token: token}, Payload: term.Nil{}},
		{Control: &Exit2TT{From: engPid, To: prodPid, Token: token, Reason: term.Atom("normal")}},
		{Control: &MonitorP{From: engPid, To: term.Atom("net_kernel"), Ref: engRef}},
		{Control: &MonitorP{From: engPid, To: prodPid, Ref: engRef}},
		{Control: &DemonitorP{From: engPid, To: term.Atom("net_kernel"), Ref: engRef}},
		{Control: &MonitorPExit{From: term.Atom("rex"), To: engPid, Ref: engRef, Reason: term.Atom("noproc")}},
		{Control: &SendSender{From: prodPid, To: engPid},
			Payload: term.Tuple{term.List{Elems: []term.Term{term.Atom("alias")}, Tail: engRef}, term.Atom("yes")}},
		{Control: &SendSenderTT{From: prodPid, To: engPid, Token: token}, Payload: term.Binary("x")},
		{Control: &PayloadExit{From: prodPid, To: engPid}, Payload: term.Atom("normal")},
		{Control: &PayloadExitTT{From: prodPid, To: engPid, Token: token}, Payload: reason},
		{Control: &PayloadExit2{From: engPid, To: prodPid}, Payload: term.Atom("kill")},
		{Control: &PayloadExit2TT{From: engPid, To: prodPid, Token: token}, Payload: term.Atom("kill")},
		{Control: &PayloadMonitorPExit{From: prodPid, To: engPid, Ref: engRef},
			Payload: term.Tuple{engRef, term.Atom("return"), term.Atom("prod@127.0.0.2")}},
		{Control: &SpawnRequest{ReqID: engRef, From: engPid, GroupLeader: engPid,
			Module: "erpc", Function: "execute_call", Arity: 4, Opts: term.MakeList(term.Atom("monitor"))},
			Payload: term.MakeList(engRef, term.Atom("erlang"), term.Atom("node"), term.Nil{})},
		{Control: &SpawnRequestTT{SpawnRequest: SpawnRequest{ReqID: engRef, From: engPid, GroupLeader: engPid,
			Module: "erpc", Function: "execute_cast", Arity: 3, Opts: term.Nil{}}, Token: token},
			Payload: term.MakeList(term.Atom("erlang"), term.Atom("node"), term.Nil{})},
		{Control: &SpawnReply{ReqID: engRef, To: engPid, Flags: SpawnReplyMonitor, Result: prodPid}},
		{Control: &SpawnReply{ReqID: engRef, To: engPid, Flags: 0, Result: term.Atom("badopt")}},
		{Control: &SpawnReplyTT{SpawnReply: SpawnReply{ReqID: engRef, To: engPid, Flags: 1, Result: prodPid}, Token: token}},
		{Control: &AliasSend{From: prodPid, Alias: engRef}, Payload: term.Tuple{engRef, term.Int(42)}},
		{Control: &AliasSendTT{From: prodPid, Alias: engRef, Token: token}, Payload: term.Int(42)},
		{Control: &UnlinkID{ID: 3, From: engPid, To: prodPid}},
		{Control: &UnlinkID{ID: math.MaxUint64, From: engPid, To: prodPid}},
		{Control: &UnlinkIDAck{ID: 1 << 63, From: prodPid, To: engPid}},
		{Control: &AltactSigSend{Flags: term.Int(AltactAlias), Sender: prodPid, To: engRef}, Payload: term.Int(1)},
		{Control: &AltactSigSend{Flags: term.Int(AltactName | AltactToken | AltactPrio), Sender: engPid, To: term.Atom("rex"),
			Token: token, Extra: []term.Term{term.Atom("future")}}, Payload: term.Int(1)},
		{Control: &AltactSigSend{Flags: term.Big{V: new(big.Int).Lsh(big.NewInt(1), 80)}, Sender: engPid, To: prodPid},
			Payload: term.Atom("kill")},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	seen := map[Op]bool{}
	for _, m := range allMessages() {
		op := m.Control.Op()
		seen[op] = true
		t.Run(op.String(), func(t *testing.T) {
			frame, err := AppendMessageFrame([]byte("junk"), m)
			if err != nil {
				t.Fatalf("AppendMessageFrame: %v", err)
			}
			body := frame[8:]
			if string(frame[:4]) != "junk" || int(frame[4])<<24|int(frame[5])<<16|int(frame[6])<<8|int(frame[7]) != len(body) {
				t.Fatalf("bad frame prefix % x", frame[:8])
			}
			got, err := DecodeFrame(body, nil)
			if err != nil {
				t.Fatalf("DecodeFrame: %v", err)
			}
			if !got.Equal(m) {
				t.Errorf("DecodeFrame = %v, want %v", got, m)
			}
			if reflect.TypeOf(got.Control) != reflect.TypeOf(m.Control) {
				t.Errorf("type %T, want %T", got.Control, m.Control)
			}
			ctrl, off, err := DecodeControl(body, nil)
			if err != nil {
				t.Fatalf("DecodeControl: %v", err)
			}
			if ctrl.Op() != op || ctrl.HasPayload() != op.HasPayload() {
				t.Errorf("DecodeControl op %v payload %t", ctrl.Op(), ctrl.HasPayload())
			}
			if m.Payload == nil && off != len(body) || m.Payload != nil && body[off] != VersionMagic {
				t.Errorf("payloadOff = %d of %d", off, len(body))
			}
		})
	}
	for op := range ops {
		if _, ok := Op(op).info(); ok && Op(op) != OpNodeLink && !seen[Op(op)] {
			t.Errorf("no round-trip case for %v", Op(op))
		}
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{OpSpawnRequest: "SPAWN_REQUEST", OpPayloadMonitorPExit: "PAYLOAD_MONITOR_P_EXIT",
		OpAltactSigSend: "ALTACT_SIG_SEND", 9: "OP(9)", 200: "OP(200)"} {
		if got := op.String(); got != want {
			t.Errorf("Op(%d).String() = %q, want %q", uint8(op), got, want)
		}
	}
}

func TestAltactHas(t *testing.T) {
	m := &AltactSigSend{Flags: term.Big{V: new(big.Int).SetBit(big.NewInt(AltactExit), 70, 1)}}
	if !m.Has(AltactExit) || m.Has(AltactAlias) {
		t.Errorf("Has on a bignum flag word is wrong")
	}
}

// frameOf builds a frame body from raw terms, without the typed encoder's
// checks, so tests can build malformed messages.
func frameOf(t *testing.T, terms ...term.Term) []byte {
	t.Helper()
	b := []byte{PassThrough}
	for _, x := range terms {
		var err error
		if b, err = term.Append(b, x); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestDecodeErrors(t *testing.T) {
	ctl := func(elems ...term.Term) term.Tuple { return term.Tuple(elems) }
	valid := frameOf(t, ctl(term.Int(OpLink), engPid, prodPid))
	tests := []struct {
		name  string
		frame []byte
		want  any // error sentinel, or a pointer to an error type for errors.As
	}{
		{"tick", nil, ErrNotPassThrough},
		{"not pass-through", append([]byte{113}, valid[1:]...), ErrNotPassThrough},
		{"dist header", []byte{131, 68, 0}, ErrDistHeader},
		{"fragment", []byte{131, 70, 0, 0}, ErrDistHeader},
		{"bad version", append([]byte{112, 130}, valid[2:]...), ErrBadVersion},
		{"truncated control", valid[:len(valid)-3], ErrBadTerm},
		{"control not a tuple", frameOf(t, term.Atom("x")), new(*ControlError)},
		{"empty tuple", frameOf(t, term.Tuple{}), new(*ControlError)},
		{"op not integer", frameOf(t, ctl(term.Atom("link"), engPid, prodPid)), new(*ControlError)},
		{"op too big", frameOf(t, ctl(term.Int(257), engPid, prodPid)), new(*ControlError)},
		{"node link", frameOf(t, ctl(term.Int(OpNodeLink))), new(*UnknownOpError)},
		{"unknown op", frameOf(t, ctl(term.Int(99), engPid)), new(*UnknownOpError)},
		{"link arity", frameOf(t, ctl(term.Int(OpLink), engPid)), new(*ControlError)},
		{"link atom for pid", frameOf(t, ctl(term.Int(OpLink), term.Atom("rex"), prodPid)), new(*ControlError)},
		{"monitor port", frameOf(t, ctl(term.Int(OpMonitorP), engPid, term.Port{Node: "a@b", ID: 1}, engRef)), new(*ControlError)},
		{"monitor ref not ref", frameOf(t, ctl(term.Int(OpMonitorP), engPid, prodPid, term.Int(1))), new(*ControlError)},
		{"reg_send name not atom", frameOf(t, ctl(term.Int(OpRegSend), engPid, term.EmptyAtom, prodPid), term.Int(1)), new(*ControlError)},
		{"spawn mfa", frameOf(t, ctl(term.Int(OpSpawnRequest), engRef, engPid, engPid,
			term.Tuple{term.Atom("m"), term.Atom("f"), term.Int(256)}, term.Nil{}), term.Nil{}), new(*ControlError)},
		{"spawn reqid pid", frameOf(t, ctl(term.Int(OpSpawnRequest), engPid, engPid, engPid,
			term.Tuple{term.Atom("m"), term.Atom("f"), term.Int(0)}, term.Nil{}), term.Nil{}), new(*ControlError)},
		{"spawn reply flags", frameOf(t, ctl(term.Int(OpSpawnReply), engRef, engPid, term.Int(1<<27), prodPid)), new(*ControlError)},
		{"unlink id 0", frameOf(t, ctl(term.Int(OpUnlinkID), term.Int(0), engPid, prodPid)), new(*ControlError)},
		{"unlink id 2^64", frameOf(t, ctl(term.Int(OpUnlinkID), term.Big{V: new(big.Int).Lsh(big.NewInt(1), 64)}, engPid, prodPid)), new(*ControlError)},
		{"altact short", frameOf(t, ctl(term.Int(OpAltactSigSend), term.Int(0), engPid), term.Int(1)), new(*ControlError)},
		{"altact negative flags", frameOf(t, ctl(term.Int(OpAltactSigSend), term.Int(-1), engPid, prodPid), term.Int(1)), new(*ControlError)},
		{"altact alias not ref", frameOf(t, ctl(term.Int(OpAltactSigSend), term.Int(AltactAlias), engPid, prodPid), term.Int(1)), new(*ControlError)},
		{"altact token missing", frameOf(t, ctl(term.Int(OpAltactSigSend), term.Int(AltactToken), engPid, prodPid), term.Int(1)), new(*ControlError)},
		{"missing payload", frameOf(t, ctl(term.Int(OpSendSender), engPid, prodPid)), ErrMissingPayload},
		{"unexpected payload", frameOf(t, ctl(term.Int(OpLink), engPid, prodPid), term.Int(1)), ErrUnexpectedPayload},
		{"unexpected garbage", append(valid[:len(valid):len(valid)], 0), ErrUnexpectedPayload},
		{"payload bad version", append(frameOf(t, ctl(term.Int(OpSendSender), engPid, prodPid)), 97, 1), ErrBadVersion},
		{"trailing bytes", frameOf(t, ctl(term.Int(OpSendSender), engPid, prodPid), term.Int(1), term.Int(2)), ErrTrailingBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeFrame(tt.frame, nil)
			if err == nil {
				t.Fatal("DecodeFrame succeeded")
			}
			switch w := tt.want.(type) {
			case error:
				if !errors.Is(err, w) {
					t.Fatalf("DecodeFrame error %v, want %v", err, w)
				}
			default:
				if !errors.As(err, w) {
					t.Fatalf("DecodeFrame error %T %v, want %T", err, err, w)
				}
			}
		})
	}
}

func TestAppendMessageRefusesPayloadMismatch(t *testing.T) {
	for _, m := range []Message{
		{Control: &Link{From: engPid, To: prodPid}, Payload: term.Int(1)},
		{Control: &SendSender{From: engPid, To: prodPid}},
		{},
	} {
		if out, err := AppendMessage([]byte("x"), m); err == nil || string(out) != "x" {
			t.Errorf("AppendMessage(%v) = %q, %v; want error and dst untouched", m, out, err)
		}
	}
}
