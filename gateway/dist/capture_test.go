package dist

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/gateway/dist/term"
	"beamgate/internal/beamtest"
)

var update = flag.Bool("update", false, "rewrite testdata/frames and the FuzzDecodeFrame seeds from a live capture")

// maskedFlags are the capability flags the capture proxy clears in both
// 'N' handshake messages, as the gateway does (docs/wire.md#masking).
const maskedFlags = 0x2000 | 0x800000 // DIST_HDR_ATOM_CACHE | FRAGMENTS

// capturedFrame is one non-tick frame seen by the capture proxy.
type capturedFrame struct {
	toProd bool
	body   []byte
}

// captureProxy relays one distribution connection, clearing maskedFlags in
// the handshake and recording every post-handshake frame.
type captureProxy struct {
	mu     sync.Mutex
	frames []capturedFrame
	wg     sync.WaitGroup
}

func (p *captureProxy) serve(t *testing.T, ln net.Listener, target string) {
	defer ln.Close()
	eng, err := ln.Accept()
	if err != nil {
		t.Errorf("proxy accept: %v", err)
		return
	}
	prod, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		eng.Close()
		t.Errorf("proxy dial: %v", err)
		return
	}
	p.wg.Add(2)
	go p.relay(t, eng, prod, true)
	go p.relay(t, prod, eng, false)
}

// relay copies src to dst: 2-byte handshake packets until the initiator's
// 'r' (toward production) or the acceptor's 'a' (toward the engineer),
// then 4-byte frames.
func (p *captureProxy) relay(t *testing.T, src, dst net.Conn, toProd bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	br := bufio.NewReader(src)
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		pkt := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(br, pkt); err != nil {
			return
		}
		if len(pkt) >= 9 && pkt[0] == 'N' {
			f := binary.BigEndian.Uint64(pkt[1:9])
			binary.BigEndian.PutUint64(pkt[1:9], f&^maskedFlags)
		}
		if _, err := dst.Write(append(hdr[:], pkt...)); err != nil {
			return
		}
		if len(pkt) > 0 && (toProd && pkt[0] == 'r' || !toProd && pkt[0] == 'a') {
			break
		}
	}
	fr := NewFrameReader(br, 64<<20)
	for {
		body, err := fr.Next()
		if err != nil {
			if err != io.EOF && !strings.Contains(err.Error(), "use of closed") {
				t.Logf("proxy (toProd=%t): %v", toProd, err)
			}
			return
		}
		if len(body) > 0 {
			p.mu.Lock()
			p.frames = append(p.frames, capturedFrame{toProd, slicesClone(body)})
			p.mu.Unlock()
		}
		if _, err := dst.Write(AppendFrame(nil, body)); err != nil {
			return
		}
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// engineerScript runs on the engineer node: net_adm:ping, erpc calls
// (returning and raising), rex block_call, and the link/monitor/exit
// signals of a remote spawn.
const engineerScript = `begin
 P = 'prod@127.0.0.2',
 pong = net_adm:ping(P),
 P = erpc:call(P, erlang, node, []),
 {'EXIT', _} = (catch erpc:call(P, erlang, error, [boom])),
 P = rpc:block_call(P, erlang, node, []),
 Self = self(),
 W = spawn(fun() ->
   process_flag(trap_exit, true),
   Pid = spawn(P, timer, sleep, [infinity]),
   link(Pid), unlink(Pid),
   group_leader(self(), Pid),
   Pid ! hello,
   {no_such_name, P} ! hello,
   Ref = monitor(process, Pid),
   exit(Pid, kill),
   receive {'DOWN', Ref, process, Pid, _} -> ok after 10000 -> exit(no_down) end,
   L = spawn_link(P, erlang, exit, [bye]),
   receive {'EXIT', L, bye} -> ok after 10000 -> exit(no_exit) end,
   Self ! {self(), done}
 end),
 receive {W, done} -> done after 20000 -> timeout end
end`

// TestCaptureRealNodes connects a real hidden engineer node to a real
// production node through the capture proxy, decodes every frame both ways
// and checks the shapes of docs/wire.md#typical-exchanges. With
// -update it rewrites the golden frames and fuzz seeds.
func TestCaptureRealNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real BEAM nodes")
	}
	beamtest.RequireErl(t)
	const cookie = "capture-cookie"
	epmd := beamtest.StartEpmd(t)
	prodPort := beamtest.FreePortOn(t, "127.0.0.2")
	beamtest.Start(t, beamtest.Options{Name: "prod@127.0.0.2", LongNames: true, Cookie: cookie,
		BindIP: "127.0.0.2", DistPort: prodPort, EpmdPort: epmd})

	// The engineer looks every node up at the proxy's port (-erl_epmd_port),
	// so the proxy must listen on production's address.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyPort := ln.Addr().(*net.TCPAddr).Port
	p := &captureProxy{}
	go p.serve(t, ln, net.JoinHostPort("127.0.0.2", strconv.Itoa(prodPort)))
	t.Cleanup(func() { ln.Close() })

	eng := beamtest.Start(t, beamtest.Options{Name: "eng@127.0.0.3", LongNames: true, Cookie: cookie,
		BindIP: "127.0.0.3", EpmdPort: epmd, Hidden: true,
		ExtraArgs: []string{"-erl_epmd_port", strconv.Itoa(proxyPort)}})
	if got := eng.Eval(t, engineerScript); got != "done" {
		t.Fatalf("engineer script = %s", got)
	}
	eng.Stop()
	waitGroup(t, &p.wg, 20*time.Second)

	p.mu.Lock()
	frames := p.frames
	p.mu.Unlock()
	seen := map[string]bool{}
	var spawnReq *SpawnRequest
	var erpcReturn bool
	for i, f := range frames {
		m, err := DecodeFrame(f.body, nil)
		if err != nil {
			t.Fatalf("frame %d (toProd=%t): %v\n% x", i, f.toProd, err, f.body)
		}
		t.Logf("%s %v", dirName(f.toProd), m)
		seen[dirName(f.toProd)+" "+m.Control.Op().String()] = true
		checkReencode(t, m)
		switch c := m.Control.(type) {
		case *SpawnRequest:
			if c.Module == "erpc" && spawnReq == nil {
				spawnReq = c
			}
		case *PayloadMonitorPExit:
			if term.IsTagged(retag(m.Payload), "return", 3) {
				erpcReturn = true
			}
		}
	}
	for _, want := range []string{
		"e2p MONITOR_P", "e2p REG_SEND", "e2p DEMONITOR_P", "p2e SEND_SENDER", // net_adm:ping
		"e2p SPAWN_REQUEST", "p2e SPAWN_REPLY", "p2e PAYLOAD_MONITOR_P_EXIT", // erpc
		"p2e ALIAS_SEND", // rex block_call reply
		"e2p LINK", "e2p UNLINK_ID", "p2e UNLINK_ID_ACK", "e2p GROUP_LEADER",
		"e2p SEND_SENDER", "e2p PAYLOAD_EXIT2", "p2e PAYLOAD_EXIT",
	} {
		if !seen[want] {
			t.Errorf("no %s frame captured", want)
		}
	}
	if spawnReq == nil || spawnReq.Function != "execute_call" || spawnReq.Arity != 4 ||
		!term.Equal(spawnReq.Opts, term.MakeList(term.Atom("monitor"))) {
		t.Errorf("erpc SPAWN_REQUEST = %+v", spawnReq)
	}
	if !erpcReturn {
		t.Error("no {ResRef, return, Value} erpc result captured")
	}
	if *update {
		writeGolden(t, frames)
	}
}

// retag turns {Ref, return, V} into {return, Ref, V} so IsTagged can check
// the middle atom.
func retag(t term.Term) term.Term {
	tp, ok := t.(term.Tuple)
	if !ok || len(tp) != 3 {
		return t
	}
	return term.Tuple{tp[1], tp[0], tp[2]}
}

func dirName(toProd bool) string {
	if toProd {
		return "e2p"
	}
	return "p2e"
}

func checkReencode(t *testing.T, m Message) {
	t.Helper()
	body, err := AppendMessage(nil, m)
	if err != nil {
		t.Fatalf("re-encoding %v: %v", m, err)
	}
	back, err := DecodeFrame(body, nil)
	if err != nil || !back.Equal(m) {
		t.Fatalf("re-encoded %v decodes to %v, %v", m, back, err)
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal("capture proxy did not finish")
	}
}

// writeGolden saves the first frame of each direction+operation under
// testdata/frames and as FuzzDecodeFrame seeds.
func writeGolden(t *testing.T, frames []capturedFrame) {
	dir := filepath.Join("testdata", "frames")
	seedDir := filepath.Join("testdata", "fuzz", "FuzzDecodeFrame")
	for _, d := range []string{dir, seedDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	saved := map[string]bool{}
	n := 0
	for _, f := range frames {
		m, _ := DecodeFrame(f.body, nil)
		key := dirName(f.toProd) + "-" + strings.ToLower(m.Control.Op().String())
		if saved[key] {
			continue
		}
		saved[key] = true
		n++
		name := fmt.Sprintf("%02d-%s", n, key)
		if err := os.WriteFile(filepath.Join(dir, name+".bin"), f.body, 0o644); err != nil {
			t.Fatal(err)
		}
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", f.body)
		if err := os.WriteFile(filepath.Join(seedDir, name), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d golden frames", n)
}
