package relay

// Interoperation across OTP releases (issue 7): the matrix of engineer and
// production releases through the relay, the wire-level evidence behind
// the ALTACT_SIG and NATIVE_RECORDS decisions in handshake/flags.go, and
// the clearing of capability bits beamgate does not know.
//
// OTP 27 and 29 run in chroots from internal/otp and are opt-in: run
// `make matrix` (BEAMGATE_MATRIX=1). TestRelayClearsUnknownFlags needs
// only the host's OTP 25 and runs with every `make test`.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/gateway/dist"
	"beamgate/gateway/dist/handshake"
	"beamgate/gateway/epmd"
	"beamgate/internal/beamtest"
	"beamgate/internal/otp"
	"beamgate/policy"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// nativeRecordBin is term_to_binary(#foo:bar{a = 7}) on OTP 29: a native
// record (RECORD_EXT, tag 67) any OTP 29 node can build with
// binary_to_term, for a module that does not exist.
const nativeRecordBin = `<<131,67,0,0,0,1,1,119,3,102,111,111,119,3,98,97,114,119,1,97,97,7>>`

// TestMatrix runs the same read-only checks and refusals through the relay
// for every engineer release against every production release, and iex
// engineers of each Elixir against production OTP 27.
func TestMatrix(t *testing.T) {
	if !otp.Enabled() {
		t.Skipf("the OTP interop matrix runs with %s=1 (make matrix)", otp.EnableEnv)
	}
	m := beamtest.NewMatrix(otp.Releases, otp.Versions)
	for _, eng := range otp.Releases {
		for _, prod := range otp.Releases {
			m.RunErl(t, eng, prod, func(t *testing.T) {
				prodErl, engErl := otp.Erl(t, prod), otp.Erl(t, eng)
				f := startFixture(t, fixtureOpts{noDirect: true, prodErl: prodErl, engErl: engErl})
				checkCell(t, f, prod)
			})
		}
	}
	for _, eng := range otp.Releases {
		const prod = "27"
		m.RunIex(t, eng, prod, func(t *testing.T) {
			prodErl, elixir := otp.Erl(t, prod), otp.Elixir(t, eng)
			f := startFixture(t, fixtureOpts{noDirect: true, prodErl: prodErl, engKind: beamtest.KindElixir, engElixir: elixir})
			got := f.eng.EvalElixir(t, `p = :"`+prodName+`"; {Node.ping(p), :rpc.call(p, :erlang, :system_info, [:otp_release]) |> List.to_string()}`)
			if want := `{:pong, "` + prod + `"}`; got != want {
				t.Errorf("Elixir ping and rpc = %s, want %s", got, want)
			}
			checkCell(t, f, prod)
		})
	}
	// The first table of `make matrix`: it replaces the file's old content.
	m.Report(t, "OTP interop matrix through beamgate", false)
}

// checkCell is one matrix cell: ping, read-only calls, the observer and
// etop protocols, every refusal, and production unchanged afterwards.
func checkCell(t *testing.T, f *fixture, prodRelease string) {
	t.Helper()
	before := f.prod.Snapshot(t)
	for expr, want := range map[string]string{
		"net_adm:ping(P).":                                  "pong",
		"rpc:call(P, erlang, node, []).":                    prodAtomErl,
		"erpc:call(P, erlang, system_info, [otp_release]).": `"` + prodRelease + `"`,
		"rpc:call(P, ets, info, [beamgate_orders, size]).":  "5",
	} {
		if got := f.eng.Eval(t, "P = "+prodAtomErl+", "+expr); got != want {
			t.Errorf("%s = %s, want %s", expr, got, want)
		}
	}
	for _, c := range observerChecks {
		t.Run(c.name, func(t *testing.T) { c.check(t, f.eng) })
	}
	for _, r := range refusals {
		t.Run("refuse "+r.name, func(t *testing.T) { r.check(t, f.eng, f.prod.MarkerPath) })
	}
	if got := f.eng.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pong" {
		t.Errorf("session did not survive the refusals: %s", got)
	}
	if after := f.prod.Snapshot(t); after != before || f.prod.MarkerExists() {
		t.Errorf("production changed:\nbefore %s\nafter  %s\nmarker %v", before, after, f.prod.MarkerExists())
	}
}

// TestAltactSigOTP29 shows why masking ALTACT_SIG is safe: two OTP 29
// nodes connected directly send gen_server replies as ALTACT_SIG_SEND
// (op 37), while through the relay, which clears the flag on both legs,
// the same calls succeed with the replies as ALIAS_SEND (op 33) and no
// op 37 appears on either leg.
func TestAltactSigOTP29(t *testing.T) {
	erl := otp.Erl(t, "29")
	const calls = `P = ` + prodAtomErl + `, {net_adm:ping(P), gen_server:call({net_kernel, P}, {is_auth, node()}, 5000),
		rpc:call(P, erlang, node, []), erpc:call(P, erlang, system_info, [otp_release])}.`
	const want = `{pong,yes,` + prodAtomErl + `,"29"}`

	t.Run("direct", func(t *testing.T) {
		w := startWire(t, wireOpts{prodErl: erl, engErl: erl})
		if got := w.eng.Eval(t, calls); got != want {
			t.Fatalf("calls = %s, want %s", got, want)
		}
		ops := w.engTap.seen(toInitiator)
		t.Logf("production → engineer: %v", ops)
		if ops["ALTACT_SIG_SEND"] == 0 {
			t.Errorf("no ALTACT_SIG_SEND between two OTP 29 nodes: %v", ops)
		}
	})
	t.Run("relay", func(t *testing.T) {
		w := startWire(t, wireOpts{prodErl: erl, engErl: erl, viaRelay: true})
		if got := w.eng.Eval(t, calls); got != want {
			t.Fatalf("calls through the relay = %s, want %s", got, want)
		}
		for _, tap := range []*flagTap{w.engTap, w.prodTap} {
			for _, dir := range []int{toAcceptor, toInitiator} {
				if ops := tap.seen(dir); ops["ALTACT_SIG_SEND"] != 0 {
					t.Errorf("%s, %s: ALTACT_SIG_SEND on a leg where the flag was cleared: %v", tap.name, dirName[dir], ops)
				}
			}
		}
		ops := w.prodTap.seen(toInitiator)
		t.Logf("production → relay: %v", ops)
		if ops["ALIAS_SEND"] == 0 {
			t.Errorf("gen_server replies did not travel as ALIAS_SEND: %v", ops)
		}
		if f := w.prodTap.announcedBy(initiator); f&handshake.AltactSig != 0 {
			t.Errorf("the relay announced ALTACT_SIG to production: %v", f)
		}
		if f := w.engTap.announcedBy(acceptor); f&handshake.AltactSig != 0 {
			t.Errorf("the relay announced ALTACT_SIG to the engineer: %v", f)
		}
		if f := w.engTap.announcedBy(initiator) & w.prodTap.announcedBy(acceptor); f&handshake.AltactSig == 0 {
			t.Errorf("the OTP 29 nodes did not offer ALTACT_SIG: engineer and production share %v", f)
		}
	})
}

// TestNativeRecordsOTP29 records what OTP 29 does with a native record on
// a connection without NATIVE_RECORDS, and that the relay keeps them away
// from production.
func TestNativeRecordsOTP29(t *testing.T) {
	erl := otp.Erl(t, "29")
	t.Run("sent without the flag", func(t *testing.T) {
		// Two OTP 29 nodes, the flag cleared in both handshake messages.
		w := startWire(t, wireOpts{prodErl: erl, engErl: erl, clear: handshake.NativeRecords})
		if got := w.eng.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pong" {
			t.Fatalf("ping = %s", got)
		}
		if f := w.engTap.announcedBy(initiator) & w.engTap.announcedBy(acceptor); f&handshake.NativeRecords == 0 {
			t.Fatalf("OTP 29 did not offer NATIVE_RECORDS: %v", f)
		}
		w.eng.Eval(t, "register(nrx, spawn(fun() -> receive X -> persistent_term:put(nrx, X) end end)).")
		got := w.prod.Eval(t, "[N] = nodes(hidden), erlang:send({nrx, N}, {wrap, binary_to_term("+nativeRecordBin+")}).")
		t.Logf("production send = %s", got)
		got = w.eng.Eval(t, "Wait = fun W(0) -> none; W(I) -> case persistent_term:get(nrx, none) of none -> timer:sleep(50), W(I - 1); X -> X end end, Wait(100).")
		if want := "{wrap,#foo:bar{a = 7}}"; got != want {
			t.Errorf("engineer received %s, want %s", got, want)
		}
		bad := w.engTap.undecodableFrames(toInitiator)
		t.Logf("production → engineer without NATIVE_RECORDS: %q", bad)
		if len(bad) == 0 || !strings.Contains(bad[0], "tag 67") {
			t.Errorf("expected the native record as RECORD_EXT (tag 67) on the wire; undecodable frames: %q", bad)
		}
	})
	t.Run("sent to OTP 25", func(t *testing.T) {
		w := startWire(t, wireOpts{prodErl: erl})
		if got := w.eng.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pong" {
			t.Fatalf("ping = %s", got)
		}
		w.eng.Eval(t, "register(nrx, spawn(fun() -> receive X -> persistent_term:put(nrx, X) end end)).")
		w.prod.Eval(t, "[N] = nodes(hidden), erlang:send({nrx, N}, binary_to_term("+nativeRecordBin+")).")
		got := w.eng.Eval(t, "Wait = fun W(0) -> nodes(hidden); W(I) -> case nodes(hidden) of [] -> []; _ -> timer:sleep(50), W(I - 1) end end, {Wait(100), persistent_term:get(nrx, none)}.")
		if got != "{[],none}" {
			t.Errorf("OTP 25 receiving a native record: %s, want the connection dropped and nothing delivered", got)
		}
		for i := 0; !strings.Contains(w.eng.Output(), "corrupted external term"); i++ {
			if i == 50 {
				t.Errorf("OTP 25 logged no corrupted external term:\n%s", w.eng.Output())
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if bad := w.engTap.undecodableFrames(toInitiator); len(bad) == 0 {
			t.Error("no RECORD_EXT frame seen towards the OTP 25 node")
		}
	})
	t.Run("relay keeps them from production", func(t *testing.T) {
		w := startWire(t, wireOpts{prodErl: erl, engErl: erl, viaRelay: true})
		before := w.prod.Snapshot(t)
		got := w.eng.Eval(t, "P = "+prodAtomErl+", pong = net_adm:ping(P), rpc:call(P, ets, info, [binary_to_term("+nativeRecordBin+")]).")
		if got != "{badrpc,{'EXIT',beamgate_denied}}" {
			t.Errorf("rpc with a native record argument = %s, want {badrpc,{'EXIT',beamgate_denied}}", got)
		}
		if bad := w.prodTap.undecodableFrames(toAcceptor); len(bad) != 0 {
			t.Errorf("undecodable frames reached production: %q", bad)
		}
		var denied []audit.Record
		for _, r := range w.records(t, audit.Filter{Decision: audit.DecisionDeny}) {
			if r.Rule == "malformed" {
				denied = append(denied, r)
			}
		}
		if len(denied) != 1 || !strings.Contains(denied[0].Reason, "tag 67") {
			t.Errorf("audit of the refused native record: %+v", denied)
		}
		if got := w.eng.Eval(t, "net_adm:ping("+prodAtomErl+")."); got != "pong" {
			t.Errorf("reconnect after the refusal: %s", got)
		}
		if after := w.prod.Snapshot(t); after != before {
			t.Errorf("production changed:\nbefore %s\nafter  %s", before, after)
		}
	})
}

// TestRelayClearsUnknownFlags puts a capability bit from a future OTP on
// both legs: the relay must clear it in both directions and log it once
// per target and side, however many sessions see it.
func TestRelayClearsUnknownFlags(t *testing.T) {
	const future handshake.Flags = 1 << 45
	core, logs := observer.New(zapcore.WarnLevel)
	w := startWire(t, wireOpts{viaRelay: true, add: future, relayLog: zap.New(core)})
	for i := range 2 {
		expr := "P = " + prodAtomErl + ", {net_adm:ping(P), rpc:call(P, erlang, node, []), erlang:disconnect_node(P)}."
		if got, want := w.eng.Eval(t, expr), "{pong,"+prodAtomErl+",true}"; got != want {
			t.Fatalf("session %d: %s, want %s", i+1, got, want)
		}
	}
	toProd, toEng := w.prodTap.announcements(initiator), w.engTap.announcements(acceptor)
	if len(toProd) != 2 || len(toEng) != 2 {
		t.Fatalf("the relay handshook %d times with production and %d with the engineer, want 2 each", len(toProd), len(toEng))
	}
	for i := range 2 {
		for side, f := range map[string]handshake.Flags{"production": toProd[i], "engineer": toEng[i]} {
			allowed := handshake.Relayable
			if side == "engineer" {
				allowed |= handshake.Published // production's, so nodes() lists it there
			}
			if extra := f &^ allowed; extra != 0 {
				t.Errorf("session %d: the relay announced %v to %s", i+1, extra, side)
			}
		}
		if toEng[i]&handshake.Published == 0 {
			t.Errorf("session %d: production's PUBLISHED did not reach the engineer", i+1)
		}
	}
	got := map[string]string{}
	for _, e := range logs.FilterMessage("cleared capability flags unknown to beamgate").All() {
		fields := e.ContextMap()
		if fields["target"] != prodName {
			t.Errorf("log entry for target %v", fields["target"])
		}
		side := fmt.Sprint(fields["side"])
		if _, dup := got[side]; dup {
			t.Errorf("unknown flags logged twice for the %s side", side)
		}
		got[side] = fmt.Sprint(fields["flags"])
	}
	want := map[string]string{"engineer": "0x200000000000", "production": "0x200000000000"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("unknown-flag log = %v, want %v", got, want)
	}
}

// wireOpts configures startWire.
type wireOpts struct {
	prodErl, engErl string
	viaRelay        bool
	clear, add      handshake.Flags // rewritten by every tap, on both sides
	relayLog        *zap.Logger
}

// wire is a production node and an engineer node connected through flag
// taps: engineer ⇄ engTap ⇄ production, or with viaRelay
// engineer ⇄ engTap ⇄ relay ⇄ prodTap ⇄ production.
type wire struct {
	fixture
	engTap, prodTap *flagTap
}

func startWire(t *testing.T, o wireOpts) *wire {
	t.Helper()
	beamtest.RequireErl(t)
	w := &wire{}
	epmdPort := beamtest.StartEpmd(t)
	prodRC := beamtest.WriteInetrc(t, map[string]string{"prod-01.beamgate.test": "127.0.0.2"})
	w.prod = beamtest.StartProduction(t, beamtest.Options{Name: prodName, LongNames: true, Cookie: prodCookie, BindIP: "127.0.0.2", EpmdPort: epmdPort, Inetrc: prodRC, Erl: o.prodErl})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	next, cookie := fmt.Sprintf("127.0.0.2:%d", w.prod.DistPort(t)), prodCookie
	if o.viaRelay {
		w.prodTap = startTap(t, ctx, "relay⇄production", next, o.clear, o.add)
		w.auditPath = filepath.Join(t.TempDir(), "audit.jsonl")
		var err error
		if w.log, err = audit.Open(w.auditPath, audit.Options{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.log.Close() })
		w.relay = New(Config{Audit: w.log, Cookies: staticCookies(prodCookie), Log: o.relayLog})
		t.Cleanup(w.relay.Close)
		profile, err := policy.Load("readonly")
		if err != nil {
			t.Fatal(err)
		}
		target := Target{Cluster: "test", Name: prodName, Dial: fmt.Sprintf("127.0.0.1:%d", serveFace(t, ctx, w.prodTap.port))}
		relayLn := listen(t)
		target.GatewayPort = relayLn.Addr().(*net.TCPAddr).Port
		eng := Engineer{User: "alice", Roles: []string{"observer"}, Session: "wire", Cookies: []string{engCookie}, Profile: profile, Mode: policy.Enforce}
		go serveLoop(ctx, relayLn, func(c net.Conn) { _ = w.relay.Serve(ctx, eng, target, c) })
		next, cookie = relayLn.Addr().String(), engCookie
	}
	w.engTap = startTap(t, ctx, "engineer⇄"+map[bool]string{false: "production", true: "relay"}[o.viaRelay], next, o.clear, o.add)
	facePort := serveFace(t, ctx, w.engTap.port)
	engRC := beamtest.WriteInetrc(t, map[string]string{"prod-01.beamgate.test": "127.0.0.1", "eng.beamgate.test": "127.0.0.1"})
	w.eng = beamtest.Start(t, beamtest.Options{Name: "eng@eng.beamgate.test", LongNames: true, Cookie: cookie, Hidden: true,
		BindIP: "127.0.0.1", EpmdPort: facePort, Inetrc: engRC, Erl: o.engErl})
	return w
}

// serveFace runs an epmd face on 127.0.0.1 that sends "prod" to port and
// returns the face's own port.
func serveFace(t *testing.T, ctx context.Context, port int) int {
	t.Helper()
	ln := listen(t)
	facePort := ln.Addr().(*net.TCPAddr).Port
	face := &epmd.Face{
		Lookup:   func(alive string) (uint16, bool) { return uint16(port), alive == "prod" },
		Names:    func() []epmd.NameEntry { return []epmd.NameEntry{{Name: "prod", Port: port}} },
		EPMDPort: uint16(facePort),
	}
	go serveLoop(ctx, ln, func(c net.Conn) { _ = face.Serve(ctx, c) })
	return facePort
}

// Handshake sides and frame directions of a flagTap.
const (
	initiator = 0 // the side that connected: announces flags in send_name
	acceptor  = 1 // the side that accepted: announces flags in its challenge

	toAcceptor  = 0 // frames written by the initiator
	toInitiator = 1 // frames written by the acceptor
)

var dirName = [2]string{"to the acceptor", "to the initiator"}

// flagTap relays distribution connections to a fixed address. In both 'N'
// handshake messages it clears `clear` (always including the atom cache
// and FRAGMENTS, so frames are the plain pass-through form) and sets
// `add`. It records the flags each side announced, before rewriting, and
// the operation of every frame after the handshake.
type flagTap struct {
	name, to   string
	clear, add handshake.Flags
	port       int

	mu        sync.Mutex
	announced [2][]handshake.Flags
	ops       [2]map[string]int
	bad       [2][]string // undecodable frames: the decoder's error
}

func startTap(t *testing.T, ctx context.Context, name, to string, clear, add handshake.Flags) *flagTap {
	t.Helper()
	ln := listen(t)
	p := &flagTap{name: name, to: to, clear: clear | handshake.DistHdrAtomCache | handshake.Fragments, add: add,
		port: ln.Addr().(*net.TCPAddr).Port, ops: [2]map[string]int{{}, {}}}
	go serveLoop(ctx, ln, func(c net.Conn) {
		d, err := net.DialTimeout("tcp", to, 5*time.Second)
		if err != nil {
			c.Close()
			return
		}
		// Initiator → acceptor: send_name, challenge_reply; acceptor →
		// initiator: status, challenge, challenge_ack.
		go p.pipe(c, d, toAcceptor, 2)
		go p.pipe(d, c, toInitiator, 3)
	})
	return p
}

func (p *flagTap) pipe(src, dst net.Conn, dir, packets int) {
	defer src.Close()
	defer dst.Close()
	br := bufio.NewReader(src)
	for range packets {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		if len(body) >= 9 && body[0] == 'N' {
			f := handshake.Flags(binary.BigEndian.Uint64(body[1:9]))
			p.mu.Lock()
			p.announced[dir] = append(p.announced[dir], f) // dir toAcceptor is the initiator's announcement
			p.mu.Unlock()
			binary.BigEndian.PutUint64(body[1:9], uint64(f&^p.clear|p.add))
		}
		if _, err := dst.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
	fr := dist.NewFrameReader(br, 0)
	var out []byte
	for {
		body, err := fr.Next()
		if err != nil {
			return
		}
		if len(body) > 0 {
			p.note(dir, body)
		}
		out = dist.AppendFrame(out[:0], body)
		if _, err := dst.Write(out); err != nil {
			return
		}
	}
}

func (p *flagTap) note(dir int, body []byte) {
	m, err := dist.DecodeFrame(body, nil)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.ops[dir]["undecodable"]++
		p.bad[dir] = append(p.bad[dir], err.Error())
		return
	}
	p.ops[dir][m.Control.Op().String()]++
}

// seen returns the operations counted in one direction so far.
func (p *flagTap) seen(dir int) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.ops[dir] {
		out[k] = v
	}
	return out
}

func (p *flagTap) undecodableFrames(dir int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bad[dir]...)
}

// announcements returns the flags side announced in each handshake, in
// order, as the tap received them.
func (p *flagTap) announcements(side int) []handshake.Flags {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]handshake.Flags(nil), p.announced[side]...)
}

// announcedBy returns the flags side announced in the first handshake.
func (p *flagTap) announcedBy(side int) handshake.Flags {
	if a := p.announcements(side); len(a) > 0 {
		return a[0]
	}
	return 0
}
