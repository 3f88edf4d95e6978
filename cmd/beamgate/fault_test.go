package main

// Gateway-level fault tests of the audit-before-forward rule (issue 11):
// the real beamgate binary, real OpenSSH `ssh -N -L`, real erl nodes.
//
//   - TestFaultSIGKILL kills `beamgate serve` at random moments while an
//     engineer node makes audited writes (mode audit) through it, restarts
//     it unattended each time, and checks that the log verifies and that
//     production executed no call that is not on disk.
//   - TestFaultFullDisk fills the audit filesystem (a small tmpfs) under
//     load, then frees it: calls are refused while the log cannot be
//     written, the gateway resumes by itself, and the log verifies with
//     the outage recorded.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/internal/beamtest"
)

const (
	// faultProdCookie is production's cookie: only the gateway's cookie
	// file holds it.
	faultProdCookie = "FAULTPRODCOOKIENEVERSHOWN"
	// faultProdNode is the production node, named by its address.
	faultProdNode = "prismatic@127.0.0.2"
	// faultKills is how many times TestFaultSIGKILL kills the gateway.
	faultKills = 24
	// faultCmdTimeout bounds one run of a beamgate or ssh command.
	faultCmdTimeout = 3 * time.Minute
	// faultProgressWait bounds waiting for the engineer's calls to get
	// through a (re)started gateway.
	faultProgressWait = 90 * time.Second
	// faultExitWait bounds waiting for a signalled process to exit.
	faultExitWait = 30 * time.Second
)

// faultCounterSource installs the counting function on production: a
// public named ETS table beamgate_count holding {n, 0}, owned by a
// long-lived process. Each ets:update_counter(beamgate_count, n, 1) an
// engineer makes is one executed call.
const faultCounterSource = `
Parent = self(),
Owner = spawn(fun() ->
    beamgate_count = ets:new(beamgate_count, [named_table, public, set]),
    true = ets:insert(beamgate_count, {n, 0}),
    Parent ! {self(), fault_ready},
    receive fault_stop -> ok end
end),
receive {Owner, fault_ready} -> ok after 10000 -> fault_counter_timeout end.
`

// faultLoopSource starts the engineer's call loop on the engineer node: a
// registered process that, until fault_stop is set, reconnects when it
// has no connection (net_adm:ping), makes the counting write and, when
// Reads (the %s) is true, a read, ignoring errors. Its counters
// (persistent_term fault_counters): 1 writes that returned, 2 writes that
// failed, 3 reads that returned, 4 reads that failed, 5 pings (the
// connection was down).
const faultLoopSource = `
Prod = '` + faultProdNode + `',
Reads = %s,
C = counters:new(5, [write_concurrency]),
persistent_term:put(fault_counters, C),
persistent_term:put(fault_stop, false),
Call = fun(M, F, A, Ix) ->
    case catch rpc:call(Prod, M, F, A, 5000) of
        {badrpc, _} -> counters:add(C, Ix + 1, 1), false;
        {'EXIT', _} -> counters:add(C, Ix + 1, 1), false;
        _ -> counters:add(C, Ix, 1), true
    end
end,
Loop = fun Loop() ->
    case persistent_term:get(fault_stop) of
        true -> ok;
        false ->
            case nodes(connected) of
                [] -> counters:add(C, 5, 1), catch net_adm:ping(Prod);
                _ -> ok
            end,
            W = Call(ets, update_counter, [beamgate_count, n, 1], 1),
            R = (not Reads) orelse Call(erlang, memory, [total], 3),
            case W andalso R of
                true -> ok;
                false -> timer:sleep(50)
            end,
            Loop()
    end
end,
register(fault_loop, spawn(fun() -> Loop() end)),
ok.
`

// faultLoopStop stops the engineer's loop and waits for it to end.
const faultLoopStop = `
persistent_term:put(fault_stop, true),
case whereis(fault_loop) of
    undefined -> ok;
    P ->
        R = monitor(process, P),
        receive {'DOWN', R, process, P, _} -> ok after 20000 -> fault_loop_still_running end
end.
`

// faultCalls are the engineer loop's counters.
type faultCalls struct {
	writes, writeFails, reads, readFails, pings int
}

// faultProc is a background process of a fault test: it dies with the
// test binary and is killed at cleanup.
type faultProc struct {
	cmd    *exec.Cmd
	out    *beamtest.SyncBuffer
	exited chan struct{}
}

func startFaultProc(t *testing.T, name string, args ...string) *faultProc {
	t.Helper()
	p := &faultProc{cmd: exec.Command(name, args...), out: &beamtest.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL) })
	return p
}

// signal sends sig to the process (not once it has been reaped) and waits,
// bounded, for it to exit. It reports whether it did.
func (p *faultProc) signal(sig syscall.Signal) bool {
	select {
	case <-p.exited:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return true
	case <-time.After(faultExitWait):
		return false
	}
}

// done reports whether the process has exited.
func (p *faultProc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// faultEnv is a gateway (the real binary, restartable) in front of a real
// production node, with alice's ssh -N -L and an engineer node.
type faultEnv struct {
	bin, dir, cfg, key string
	sshPort, ep, gp    int
	prod               *beamtest.Production
	serve, fwd         *faultProc
	serveLogs          strings.Builder // the output of every gateway instance that ended
	cookie             string          // alice's gateway cookie
	eng                *beamtest.Node
}

// newFaultEnv builds beamgate, starts production (with the counter) on
// 127.0.0.2 behind its own epmd, and writes a configuration whose audit
// block is auditYAML: the file cookie backend, alice in a mode audit role.
func newFaultEnv(t *testing.T, auditYAML string) *faultEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("builds beamgate, starts BEAM nodes and OpenSSH")
	}
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t, "go")
	e := &faultEnv{bin: beamtest.BuildBeamgate(t, t.TempDir()), dir: t.TempDir()}
	prodEpmd := beamtest.StartEpmdOn(t, "127.0.0.2")
	e.prod = beamtest.StartProduction(t, beamtest.Options{Name: faultProdNode, Cookie: faultProdCookie, LongNames: true,
		BindIP: "127.0.0.2", EpmdPort: prodEpmd})
	if got := e.prod.Eval(t, faultCounterSource); got != "ok" {
		t.Fatalf("install the counter on production: %s", got)
	}
	e.key = beamtest.NewSSHKey(t, e.dir, "alice")
	e.sshPort = beamtest.FreePort(t)
	e.ep = beamtest.FreePortOn(t, "127.0.0.1", "127.0.0.2")
	e.gp = beamtest.FreePortOn(t, "127.0.0.2")
	state := filepath.Join(e.dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "cookies.yaml"), []byte("prismatic: "+faultProdCookie+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg = filepath.Join(e.dir, "beamgate.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
host_key: ./state/host_key
engineer_epmd_port: %d
%s
cookies:
  backend: file
  file: ./state/cookies.yaml
clusters:
  prismatic:
    nodes:
      - name: %s
        dial: 127.0.0.2:%d
        gateway_port: %d
users:
  alice:
    keys: [%q]
    roles: [writer]
roles:
  writer:
    clusters: [prismatic]
    policy: readonly
    mode: audit
`, e.sshPort, e.ep, auditYAML, faultProdNode, prodEpmd, e.gp, beamtest.PublicKey(t, e.key))
	if err := os.WriteFile(e.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// startServe starts `beamgate serve` and waits until it accepts SSH
// connections; a gateway that exits instead (it did not restart
// unattended) fails the test with its output.
func (e *faultEnv) startServe(t *testing.T) {
	t.Helper()
	e.serve = startFaultProc(t, e.bin, "serve", "--config", e.cfg)
	beamtest.WaitListening(t, fmt.Sprintf("127.0.0.1:%d", e.sshPort), e.serve.exited,
		func() string { return e.serveLogs.String() + e.serve.out.String() })
}

// endServe records the output of the gateway instance, which has exited.
func (e *faultEnv) endServe() {
	e.serveLogs.WriteString(e.serve.out.String())
}

// allServeLogs is the output of every gateway instance so far.
func (e *faultEnv) allServeLogs() string {
	s := e.serveLogs.String()
	if e.serve != nil && !e.serve.done() {
		s += e.serve.out.String()
	}
	return s
}

// sshArgs are alice's ssh options, then extra, then the destination.
func (e *faultEnv) sshArgs(extra ...string) []string {
	return append(beamtest.SSHClientArgs(e.sshPort, e.key, extra...), "alice@127.0.0.1")
}

// startForward starts alice's ssh -N -L (the recipe, on loopback: the
// engineer node registers with the forwarded epmd on 127.0.0.1, looks
// production up on 127.0.0.2 and reaches it on the gateway port) and waits
// for the forwarded epmd. An ssh that exits first (a local port taken
// meanwhile by another process's connection) is retried, a few times.
func (e *faultEnv) startForward(t *testing.T) {
	t.Helper()
	const attempts = 3
	addr := fmt.Sprintf("127.0.0.2:%d", e.ep)
	for attempt := 1; ; attempt++ {
		e.fwd = startFaultProc(t, "ssh", e.sshArgs("-N", "-o", "ExitOnForwardFailure=yes",
			"-L", fmt.Sprintf("127.0.0.1:%d:127.0.0.2:4369", e.ep),
			"-L", fmt.Sprintf("127.0.0.2:%d:127.0.0.2:4369", e.ep),
			"-L", fmt.Sprintf("127.0.0.2:%d:127.0.0.2:%d", e.gp, e.gp))...)
		deadline := time.Now().Add(beamtest.ListenTimeout)
		for !e.fwd.done() {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ssh -N: nothing listening on %s after %v\n%s\ngateway:\n%s", addr, beamtest.ListenTimeout, e.fwd.out.String(), e.allServeLogs())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if attempt == attempts {
			t.Fatalf("ssh -N exited before forwarding, %d times; last:\n%s\ngateway:\n%s", attempts, e.fwd.out.String(), e.allServeLogs())
		}
		t.Logf("ssh -N exited before forwarding (attempt %d); again:\n%s", attempt, e.fwd.out.String())
		time.Sleep(time.Second)
	}
}

// faultRun runs a command to completion (bounded) and returns its exit code,
// stdout and stderr.
func faultRun(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	if err != nil {
		t.Fatalf("%s %q: %v", name, args, err)
	}
	return 0, stdout.String(), stderr.String()
}

// login gets alice's gateway cookie with a new SSH login.
func (e *faultEnv) login(t *testing.T) string {
	t.Helper()
	code, out, errOut := faultRun(t, "ssh", append(e.sshArgs(), "cookie")...)
	cookie := strings.TrimSpace(out)
	if code != 0 || cookie == "" {
		t.Fatalf("ssh alice cookie: exit %d\n%s%s\ngateway:\n%s", code, out, errOut, e.allServeLogs())
	}
	return cookie
}

// startEngineer starts alice's hidden engineer node (the forward must be
// up: it registers with the forwarded epmd) and its call loop.
func (e *faultEnv) startEngineer(t *testing.T, reads bool) {
	t.Helper()
	e.eng = beamtest.Start(t, beamtest.Options{Name: "eng@127.0.0.1", Cookie: e.cookie, EpmdPort: e.ep,
		LongNames: true, Hidden: true})
	if got := e.eng.Eval(t, "net_adm:ping('"+faultProdNode+"')"); got != "pong" {
		t.Fatalf("engineer ping through beamgate = %s\ngateway:\n%s", got, e.allServeLogs())
	}
	if got := e.eng.Eval(t, fmt.Sprintf(faultLoopSource, strconv.FormatBool(reads))); got != "ok" {
		t.Fatalf("start the engineer's call loop: %s", got)
	}
}

// calls reads the engineer loop's counters.
func (e *faultEnv) calls(t *testing.T) faultCalls {
	t.Helper()
	// ~w: a list of small integers would print as a string under ~p.
	got := e.eng.EvalString(t, `C = persistent_term:get(fault_counters), io_lib:format("~w", [[counters:get(C, I) || I <- lists:seq(1, 5)]])`)
	var n [5]int
	fields := strings.Split(strings.Trim(got, "[]"), ",")
	if len(fields) != len(n) {
		t.Fatalf("engineer counters: %s", got)
	}
	for i, f := range fields {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("engineer counters: %s", got)
		}
		n[i] = v
	}
	return faultCalls{writes: n[0], writeFails: n[1], reads: n[2], readFails: n[3], pings: n[4]}
}

// stopLoop stops the engineer's call loop.
func (e *faultEnv) stopLoop(t *testing.T) {
	t.Helper()
	if got := e.eng.Eval(t, faultLoopStop); got != "ok" {
		t.Fatalf("stop the engineer's call loop: %s", got)
	}
}

// counter is production's count of executed ets:update_counter calls.
func (e *faultEnv) counter(t *testing.T) int {
	t.Helper()
	got := e.prod.Eval(t, "ets:lookup_element(beamgate_count, n, 2)")
	n, err := strconv.Atoi(got)
	if err != nil {
		t.Fatalf("production counter: %s", got)
	}
	return n
}

// waitWrites waits (bounded) until the engineer's writes that returned
// exceed after; it fails if the gateway exits meanwhile.
func (e *faultEnv) waitWrites(t *testing.T, after int, what string) faultCalls {
	t.Helper()
	deadline := time.Now().Add(faultProgressWait)
	for {
		c := e.calls(t)
		if c.writes > after {
			return c
		}
		if e.serve.done() {
			t.Fatalf("%s: the gateway exited:\n%s", what, e.allServeLogs())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no call got through in %v (engineer %+v)\nssh -N:\n%s\ngateway:\n%s", what, faultProgressWait, c,
				e.fwd.out.String(), e.allServeLogs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// audited counts the message records with decision allow_write for
// ets:update_counter/3 across the whole audit set, with the real binary.
func (e *faultEnv) audited(t *testing.T) int {
	t.Helper()
	code, out, errOut := faultRun(t, e.bin, "audit", "--config", e.cfg, "--event", "message", "--decision", "allow_write", "--json")
	if code != 0 {
		t.Fatalf("beamgate audit: exit %d\n%s%s", code, out, errOut)
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"mfa":"ets:update_counter/3"`) {
			n++
		}
	}
	if n == 0 && strings.Contains(out, "update_counter") {
		t.Fatalf("beamgate audit --json: update_counter records without the expected mfa field:\n%.2000s", out)
	}
	return n
}

// events returns the records of one event across the audit set.
func (e *faultEnv) events(t *testing.T, event audit.Event) []audit.Record {
	t.Helper()
	code, out, errOut := faultRun(t, e.bin, "audit", "--config", e.cfg, "--event", string(event), "--json")
	if code != 0 {
		t.Fatalf("beamgate audit --event %s: exit %d\n%s%s", event, code, out, errOut)
	}
	var recs []audit.Record
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("beamgate audit --json line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// verify runs `beamgate audit verify --config` and returns its exit code
// and output.
func (e *faultEnv) verify(t *testing.T) (int, string) {
	t.Helper()
	code, out, errOut := faultRun(t, e.bin, "audit", "verify", "--config", e.cfg)
	return code, out + errOut
}

// failLines are the FAIL lines of a verify report.
func failLines(report string) []string {
	var fails []string
	for _, l := range strings.Split(report, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "FAIL ") {
			fails = append(fails, l)
		}
	}
	return fails
}

// interruptedRotation reports whether a rotation was cut short at path:
// its new file still under <path>.rotating, or the active file also named
// by a rotated name. Open undoes both.
func interruptedRotation(path string) bool {
	if _, err := os.Stat(path + ".rotating"); err == nil {
		return true
	}
	active, err := os.Stat(path)
	if err != nil {
		return false
	}
	rotated, _ := filepath.Glob(path + ".2*")
	for _, r := range rotated {
		if fi, err := os.Stat(r); err == nil && os.SameFile(fi, active) {
			return true
		}
	}
	return false
}

// tearTail appends the first half of the active file's last record to it,
// without a newline: what a write cut short by a power loss leaves.
func tearTail(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	last := lines[len(lines)-1]
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(last[:len(last)/2]); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestFaultSIGKILL kills `beamgate serve` with SIGKILL at random moments
// while an engineer node makes audited writes through it (a role in mode
// audit; each call increments production's counter), faultKills times,
// restarting it with the same configuration after each kill. Every
// restart must succeed unattended; after each kill `beamgate audit verify`
// finds nothing wrong but what a crash leaves and the next start repairs
// (a torn final line, an interrupted rotation; once, half a record is
// appended after a kill, as a power loss would leave); at the end the
// rotated set verifies, every torn line was recovered (a recovered record,
// a quarantine file, a note in verify, a line in the operator log), and
// production's counter does not exceed the audited allow_write records of
// the call (audit before forward).
func TestFaultSIGKILL(t *testing.T) {
	e := newFaultEnv(t, `audit:
  path: ./state/audit/audit.jsonl
  rotate_size: 64KiB
  checkpoint:
    interval: 1s`)
	active := filepath.Join(e.dir, "state", "audit", "audit.jsonl")
	e.startServe(t)
	e.cookie = e.login(t)
	e.startForward(t)
	e.startEngineer(t, false)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t.Logf("kill delays seeded with %d", seed)
	var (
		kills, tornSeen, tornInjected, rotationsCut int
		delays                                      []string
		c                                           faultCalls
	)
	deadline := time.Now().Add(8 * time.Minute) // within go test's default -timeout
	for kills < faultKills {
		if time.Now().After(deadline) {
			t.Fatalf("only %d kills before the deadline", kills)
		}
		// The engineer is making calls through this gateway instance.
		c = e.waitWrites(t, c.writes, fmt.Sprintf("before kill %d", kills+1))
		d := 200*time.Millisecond + time.Duration(rng.Int64N(int64(1300*time.Millisecond)))
		delays = append(delays, d.Round(time.Millisecond).String())
		time.Sleep(d)
		if e.serve.done() {
			t.Fatalf("the gateway exited by itself before kill %d:\n%s", kills+1, e.allServeLogs())
		}
		if !e.serve.signal(syscall.SIGKILL) {
			t.Fatalf("the gateway did not die of SIGKILL %d", kills+1)
		}
		kills++
		e.endServe()
		// Its ssh connection died with it.
		if !e.fwd.signal(syscall.SIGTERM) {
			t.Fatalf("ssh -N did not exit after kill %d", kills)
		}
		if kills == faultKills/2 {
			// A SIGKILL does not cut a write(2) short, so kills rarely
			// tear a line; a power loss does. Leave what one would (the
			// first half of a record, no newline) once, so the restart
			// must repair a torn line unattended too.
			tearTail(t, active)
			tornInjected++
		}

		// What the kill left: verify must find nothing but a torn final
		// line or an interrupted rotation, which the next start repairs.
		code, rep := e.verify(t)
		if code != 0 {
			var other []string
			for _, f := range failLines(rep) {
				if strings.HasPrefix(f, "FAIL torn: audit.jsonl line ") {
					tornSeen++
				} else {
					other = append(other, f)
				}
			}
			if len(other) > 0 {
				if interruptedRotation(active) {
					rotationsCut++
					t.Logf("kill %d interrupted a rotation; verify before the restart:\n%s", kills, rep)
				} else {
					t.Fatalf("audit verify after kill %d (exit %d), before the restart:\n%s", kills, code, rep)
				}
			}
		}
		c = e.calls(t)
		e.startServe(t) // the same configuration, no repair
		e.startForward(t)
	}
	// The gateway started after the last kill works too.
	c = e.waitWrites(t, c.writes, "after the last kill")
	e.stopLoop(t)
	c = e.calls(t)
	e.fwd.signal(syscall.SIGTERM)
	if !e.serve.signal(syscall.SIGTERM) {
		t.Fatalf("the gateway did not stop on SIGTERM")
	}
	e.endServe()

	code, rep := e.verify(t)
	t.Logf("audit verify (exit %d):\n%s", code, rep)
	if code != 0 || !strings.Contains(rep, "ok audit log") {
		t.Errorf("audit verify after %d kills: exit %d\n%s", kills, code, rep)
	}
	recovered := e.events(t, audit.EventRecovered)
	tornNotes := strings.Count(rep, "torn bytes")
	quarantined, _ := filepath.Glob(active + ".torn-*")
	tornLogged := strings.Count(e.allServeLogs(), "torn final line")
	if tornSeen < tornInjected || len(recovered) != tornSeen || tornNotes != tornSeen || tornLogged != tornSeen {
		t.Errorf("torn final lines seen after the kills: %d (%d made on purpose); recovered records: %d; verify's notes of them: %d; operator log lines: %d",
			tornSeen, tornInjected, len(recovered), tornNotes, tornLogged)
	}
	var quarantineFiles int
	for _, q := range quarantined {
		if !strings.HasSuffix(q, ".pending") {
			quarantineFiles++
		}
	}
	if quarantineFiles != len(recovered) {
		t.Errorf("quarantine files %v, recovered records %d", quarantined, len(recovered))
	}
	segments, err := audit.Segments(active)
	if err != nil {
		t.Fatal(err)
	}
	counter := e.counter(t)
	audited := e.audited(t)
	logs := e.allServeLogs()
	t.Logf("kills %d (delays %s); production counter %d; audited allow_write ets:update_counter/3 %d; engineer %+v; "+
		"torn tails seen %d (%d made on purpose), recovered %d (operator log lines %d); rotations cut by a kill %d; audit files %d",
		kills, strings.Join(delays, " "), counter, audited, c, tornSeen, tornInjected, len(recovered),
		tornLogged, rotationsCut, len(segments))
	fmt.Printf("FAULT-SIGKILL: kills=%d counter=%d audited=%d recoveries=%d torn_seen=%d torn_injected=%d rotations_cut=%d files=%d engineer_ok=%d engineer_failed=%d verify_exit=%d\n",
		kills, counter, audited, len(recovered), tornSeen, tornInjected, rotationsCut, len(segments), c.writes, c.writeFails, code)
	if counter > audited {
		t.Errorf("production executed %d calls, but only %d are in the audit log: a call was forwarded before its record was on disk", counter, audited)
	}
	if counter == 0 || counter < c.writes {
		t.Errorf("production counter %d, engineer saw %d calls return", counter, c.writes)
	}
	if strings.Contains(logs, faultProdCookie) || strings.Contains(e.eng.Output(), faultProdCookie) {
		t.Errorf("the production cookie leaked to the gateway's or the engineer's output")
	}
}

// TestFaultFullDisk puts the audit log on a 2 MiB tmpfs (root only; the
// checkpoint key outside it), has an engineer make reads and counting
// writes through the gateway, and fills the tmpfs: calls are refused and
// production's counter stops, a new login is told why (not a key error)
// and the operator log says so. Once the junk is deleted the same gateway
// process accepts logins and calls again by itself; the log then verifies
// with the outage noted, and production's counter does not exceed the
// audited writes.
func TestFaultFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs, builds beamgate, starts BEAM nodes and OpenSSH")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	beamtest.RequireErl(t)
	beamtest.RequireOpenSSH(t, "go")
	fsDir := filepath.Join(t.TempDir(), "auditfs")
	if err := os.Mkdir(fsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", fsDir, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(fsDir, 0); err != nil {
			syscall.Unmount(fsDir, syscall.MNT_DETACH)
		}
	})
	keyDir := filepath.Join(t.TempDir(), "anchor")
	e := newFaultEnv(t, fmt.Sprintf(`audit:
  path: %s
  checkpoint:
    key_file: %s`, filepath.Join(fsDir, "audit.jsonl"), filepath.Join(keyDir, "checkpoint-key")))
	active := filepath.Join(fsDir, "audit.jsonl")
	e.startServe(t)
	e.cookie = e.login(t)
	e.startForward(t)
	e.startEngineer(t, true)
	c := e.waitWrites(t, 20, "before the disk fills")
	if c.reads == 0 {
		t.Fatalf("no read got through: %+v", c)
	}

	// Fill the filesystem, and keep it full: grab any page freed later.
	data, err := os.ReadFile(active)
	if err != nil {
		t.Fatal(err)
	}
	recordsBefore := bytes.Count(data, []byte("\n"))
	junkPath := filepath.Join(fsDir, "junk")
	junk, err := os.OpenFile(junkPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 64<<10)
	filled := 0
	for _, size := range []int{64 << 10, 4 << 10, 512, 1} {
		for range 1 << 14 { // bounded: 2 MiB is far fewer blocks
			n, err := junk.Write(block[:size])
			filled += n
			if err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the tmpfs: %v", err)
				}
				break
			}
		}
	}
	t.Logf("tmpfs full: %d bytes of junk, %d audit records before", filled, recordsBefore)
	stopFill := make(chan struct{})
	fillDone := make(chan struct{})
	go func() {
		defer close(fillDone)
		for {
			select {
			case <-stopFill:
				return
			case <-time.After(20 * time.Millisecond):
				junk.Write(block[:4<<10])
			}
		}
	}()
	freed := false
	free := func() {
		if freed {
			return
		}
		freed = true
		close(stopFill)
		<-fillDone
		junk.Close()
		if err := os.Remove(junkPath); err != nil {
			t.Errorf("remove the junk: %v", err)
		}
	}
	t.Cleanup(free)

	// The writer notices at its next write and tells the operator.
	deadline := time.Now().Add(faultProgressWait)
	for !strings.Contains(e.allServeLogs(), "audit log write failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no outage in the gateway's log %v after the disk filled (engineer %+v):\n%s", faultProgressWait, e.calls(t), e.allServeLogs())
		}
		if e.serve.done() {
			t.Fatalf("the gateway exited when the disk filled:\n%s", e.allServeLogs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	outageSeen := time.Now()
	// Nothing reaches production while the log cannot be written.
	time.Sleep(2 * time.Second) // calls in flight at the failure end
	c1, n1 := e.calls(t), e.counter(t)
	time.Sleep(5 * time.Second)
	c2, n2 := e.calls(t), e.counter(t)
	if n2 != n1 {
		t.Errorf("production's counter went from %d to %d while the audit log could not be written", n1, n2)
	}
	if c2.writes != c1.writes || c2.reads != c1.reads {
		t.Errorf("calls returned while the audit log could not be written: %+v then %+v", c1, c2)
	}
	if c2.writeFails <= c1.writeFails || c2.pings <= c1.pings {
		t.Errorf("the engineer's calls neither failed nor lost the session during the outage: %+v then %+v", c1, c2)
	}
	// A new login is told why, not "Permission denied (publickey)" alone.
	args := e.sshArgs()
	for i, a := range args {
		if a == "LogLevel=ERROR" {
			args[i] = "LogLevel=INFO"
		}
	}
	code, out, errOut := faultRun(t, "ssh", append(args, "cookie")...)
	if code != 255 || !strings.Contains(errOut, "audit log cannot be written") || strings.Contains(out, e.cookie) {
		t.Errorf("login during the outage: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if e.serve.done() {
		t.Fatalf("the gateway exited during the outage:\n%s", e.allServeLogs())
	}

	// Free the space: the same gateway process resumes by itself.
	free()
	freedAt := time.Now()
	deadline = freedAt.Add(faultProgressWait)
	var relogin time.Duration
	for relogin == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no login %v after the disk was freed:\n%s", faultProgressWait, e.allServeLogs())
		}
		if e.serve.done() {
			t.Fatalf("the gateway exited after the disk was freed:\n%s", e.allServeLogs())
		}
		code, out, _ := faultRun(t, "ssh", append(e.sshArgs(), "cookie")...)
		if code == 0 && strings.TrimSpace(out) == e.cookie {
			relogin = time.Since(freedAt)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if e.fwd.done() {
		t.Logf("alice's ssh -N ended during the outage:\n%s\nstarting it again", e.fwd.out.String())
		e.startForward(t)
	}
	e.waitWrites(t, c2.writes, "after the disk was freed")
	recallIn := time.Since(freedAt)
	if n3 := e.counter(t); n3 <= n2 {
		t.Errorf("production's counter %d did not move after the recovery (was %d)", n3, n2)
	}
	if !strings.Contains(e.allServeLogs(), "audit log writable again") {
		t.Errorf("the operator log does not say the audit log resumed:\n%s", e.allServeLogs())
	}
	e.stopLoop(t)
	cEnd := e.calls(t)
	if cEnd.reads <= c2.reads {
		t.Errorf("no read got through after the recovery: %+v then %+v", c2, cEnd)
	}
	e.fwd.signal(syscall.SIGTERM)
	if !e.serve.signal(syscall.SIGTERM) {
		t.Fatalf("the gateway did not stop on SIGTERM")
	}
	e.endServe()

	code, rep := e.verify(t)
	t.Logf("audit verify (exit %d):\n%s", code, rep)
	if code != 0 || !strings.Contains(rep, "could not be written") {
		t.Errorf("audit verify after the full disk: exit %d\n%s", code, rep)
	}
	outages := e.events(t, audit.EventOutage)
	if len(outages) == 0 {
		t.Fatalf("no audit_outage record")
	}
	var (
		refused   int
		durations []string
	)
	for _, o := range outages {
		n, err := strconv.Atoi(o.Detail["refused"])
		if err != nil {
			t.Errorf("audit_outage refused %q", o.Detail["refused"])
		}
		refused += n
		durations = append(durations, o.Detail["duration"])
		if !strings.Contains(o.Detail["error"], "no space left on device") {
			t.Errorf("audit_outage error %q, want ENOSPC", o.Detail["error"])
		}
	}
	if refused == 0 {
		t.Errorf("the outage records no refused appends: %+v", outages)
	}
	counter := e.counter(t)
	audited := e.audited(t)
	t.Logf("records before %d; outages %d, refused %d, duration %s; outage seen %v before the junk was deleted; "+
		"login again %v and calls again %v after; production counter %d; audited allow_write ets:update_counter/3 %d; engineer %+v",
		recordsBefore, len(outages), refused, strings.Join(durations, ","), freedAt.Sub(outageSeen).Round(time.Millisecond),
		relogin.Round(time.Millisecond), recallIn.Round(time.Millisecond), counter, audited, cEnd)
	fmt.Printf("FAULT-DISK: records_before=%d outages=%d refused=%d outage_duration=%s relogin_after_free=%s calls_after_free=%s counter=%d audited=%d engineer_ok=%d engineer_failed=%d verify_exit=%d\n",
		recordsBefore, len(outages), refused, strings.Join(durations, ","), relogin.Round(time.Millisecond), recallIn.Round(time.Millisecond),
		counter, audited, cEnd.writes, cEnd.writeFails, code)
	if counter > audited {
		t.Errorf("production executed %d calls, but only %d are in the audit log: a call was forwarded unaudited", counter, audited)
	}
}
