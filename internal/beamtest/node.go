package beamtest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Node kinds.
const (
	KindErl    = "erl"    // a plain erl VM
	KindElixir = "elixir" // an Elixir VM started with the elixir launcher
)

// Defaults for Options.
const (
	DefaultCookie      = "beamtest-cookie"
	DefaultEvalTimeout = 30 * time.Second
)

const (
	startTimeout   = 60 * time.Second // boot to agent ready; elixir boots slowly under load
	stopGrace      = 5 * time.Second  // init:stop() before SIGKILL
	killWait       = 10 * time.Second // SIGKILL until the process is reaped
	readerWait     = 5 * time.Second  // output readers draining after exit
	maxOutputLine  = 256 << 20        // longest stdout line (one reply) we accept
	readyRequestID = 0
)

var (
	// ErrAgentDead means the node's VM exited (or its stdin broke) before
	// answering.
	ErrAgentDead = errors.New("beamtest: node agent is dead")
	// ErrEvalTimeout means the agent did not answer within the eval timeout.
	ErrEvalTimeout = errors.New("beamtest: eval timed out")
)

// EvalError is returned by EvalErr when the expression raised. Reply is the
// printed {beamtest_error, Class, Reason} term.
type EvalError struct {
	Expr  string
	Reply string
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("beamtest: %q raised: %s", e.Expr, e.Reply)
}

// Options describe a node for Start. The zero value (plus nothing) is a
// non-distributed erl node.
type Options struct {
	Name      string // full node name ("prod@prod-01.beamgate.test", "eng@localhost"); "" = not distributed
	LongNames bool   // -name instead of -sname
	Cookie    string // "" = DefaultCookie
	BindIP    string // distribution listen address (-kernel inet_dist_use_interface)
	DistPort  int    // distribution listen port; 0 = any
	EpmdPort  int    // ERL_EPMD_PORT; required when Name is set (see StartEpmd)
	Inetrc    string // ERL_INETRC (see WriteInetrc)
	Hidden    bool   // -hidden
	Kind      string // KindErl (default) or KindElixir

	// ExtraArgs are appended to the launcher's arguments: erl flags for
	// KindErl, elixir flags for KindElixir (wrap erl flags in "--erl").
	ExtraArgs []string
	// Env entries ("K=V") override the node's environment.
	Env []string
	// Erl is the erl binary (default "erl"), e.g. a wrapper for another OTP
	// release. For KindElixir it is put first on PATH as "erl".
	Erl string
	// Elixir is the elixir launcher for KindElixir (default "elixir").
	Elixir string
	// EvalTimeout bounds each Eval (default DefaultEvalTimeout).
	EvalTimeout time.Duration
}

// Node is a running BEAM node driven through its stdin/stdout agent. Its
// methods are safe for concurrent use; requests are evaluated concurrently
// on the node.
type Node struct {
	// Name is the node's name as node() reports it ("nonode@nohost" when
	// not distributed).
	Name string
	// Opts are the options the node was started with, defaults filled in.
	Opts Options

	label   string
	marker  string
	cmd     *exec.Cmd
	stdin   *os.File
	readers []*os.File
	exited  chan struct{} // closed when the VM process has been reaped
	exitErr error         // set before exited is closed
	nextID  atomic.Uint64
	writeMu sync.Mutex // serializes request lines on stdin
	stopped sync.Once
	readWG  sync.WaitGroup

	mu        sync.Mutex // guards the fields below
	t         testing.TB
	logClosed bool // the owning test is over: drop log lines
	pending   map[uint64]chan agentReply
	output    strings.Builder
}

type agentReply struct {
	status string // "ok", "err" or "ready"
	text   string
}

// Start boots a node, waits until its agent answers, and stops it in
// t.Cleanup. Node output other than agent replies goes to t.Log, and all of
// it (replies decoded) to Output. The node never starts epmd itself
// (-start_epmd false): distributed nodes need Options.EpmdPort.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	opts = withDefaults(t, opts)
	if opts.Kind == KindElixir {
		RequireElixir(t)
	} else {
		RequireErl(t)
	}

	n := &Node{
		Opts:    opts,
		label:   opts.Name,
		marker:  "BEAMTEST-" + randomHex(t, 12),
		exited:  make(chan struct{}),
		t:       t,
		pending: make(map[uint64]chan agentReply),
	}
	if n.label == "" {
		n.label = "node"
	}
	ready := make(chan agentReply, 1)
	n.pending[readyRequestID] = ready

	dir := t.TempDir()
	n.cmd = exec.Command(opts.Erl, erlArgs(opts)...)
	if opts.Kind == KindElixir {
		n.cmd = exec.Command(opts.Elixir, elixirArgs(opts)...)
	}
	n.cmd.Dir = dir // erl_crash.dump lands here
	n.cmd.Env = nodeEnv(t, opts, dir, n.marker)
	n.cmd.SysProcAttr = childSysProcAttr()
	n.start(t)
	t.Cleanup(n.Stop)

	select {
	case r := <-ready:
		n.Name = r.text
	case <-n.exited:
		t.Fatalf("beamtest: %s exited before its agent was ready (%v); output:\n%s", n.label, n.exitErr, n.Output())
	case <-time.After(startTimeout):
		t.Fatalf("beamtest: %s agent not ready after %v; output:\n%s", n.label, startTimeout, n.Output())
	}
	return n
}

func withDefaults(t testing.TB, opts Options) Options {
	t.Helper()
	if opts.Kind == "" {
		opts.Kind = KindErl
	}
	if opts.Kind != KindErl && opts.Kind != KindElixir {
		t.Fatalf("beamtest: unknown node kind %q", opts.Kind)
	}
	if opts.Cookie == "" {
		opts.Cookie = DefaultCookie
	}
	if opts.Erl == "" {
		opts.Erl = "erl"
	}
	if opts.Elixir == "" {
		opts.Elixir = "elixir"
	}
	if opts.EvalTimeout <= 0 {
		opts.EvalTimeout = DefaultEvalTimeout
	}
	if opts.Name != "" && opts.EpmdPort == 0 {
		t.Fatalf("beamtest: node %q: Options.EpmdPort is required for a distributed node (use StartEpmd)", opts.Name)
	}
	if opts.BindIP != "" && net.ParseIP(opts.BindIP).To4() == nil {
		t.Fatalf("beamtest: node %q: BindIP %q is not an IPv4 address", opts.Name, opts.BindIP)
	}
	return opts
}

// vmFlags are the erl flags both kinds share.
func vmFlags(opts Options) []string {
	flags := []string{"-start_epmd", "false"}
	if opts.BindIP != "" {
		flags = append(flags, "-kernel", "inet_dist_use_interface", erlIPTuple(opts.BindIP))
	}
	if opts.DistPort != 0 {
		p := strconv.Itoa(opts.DistPort)
		flags = append(flags, "-kernel", "inet_dist_listen_min", p, "-kernel", "inet_dist_listen_max", p)
	}
	return flags
}

func erlArgs(opts Options) []string {
	args := append([]string{"-noshell"}, vmFlags(opts)...)
	if opts.Name != "" {
		args = append(args, nameFlag(opts, "-"), opts.Name)
	}
	args = append(args, "-setcookie", opts.Cookie)
	if opts.Hidden {
		args = append(args, "-hidden")
	}
	args = append(args, opts.ExtraArgs...)
	return append(args, "-eval", erlBootEval)
}

func elixirArgs(opts Options) []string {
	// The elixir launcher word-splits --erl; our flags hold no spaces.
	args := []string{"--erl", strings.Join(vmFlags(opts), " ")}
	if opts.Name != "" {
		args = append(args, nameFlag(opts, "--"), opts.Name)
	}
	args = append(args, "--cookie", opts.Cookie)
	if opts.Hidden {
		args = append(args, "--hidden")
	}
	args = append(args, "--no-halt")
	args = append(args, opts.ExtraArgs...)
	return append(args, "-e", elixirBootEval)
}

func nameFlag(opts Options, dash string) string {
	if opts.LongNames {
		return dash + "name"
	}
	return dash + "sname"
}

func erlIPTuple(ip string) string {
	v4 := net.ParseIP(ip).To4()
	return fmt.Sprintf("{%d,%d,%d,%d}", v4[0], v4[1], v4[2], v4[3])
}

// scrubbedEnv lists variables of the test's environment that would change
// how a node boots; nodeEnv drops them before setting its own.
var scrubbedEnv = []string{
	"ERL_EPMD_PORT", "ERL_INETRC", "ERL_AFLAGS", "ERL_ZFLAGS", "ERL_FLAGS",
	"ELIXIR_ERL_OPTIONS", "HOME", "BEAMTEST_AGENT", "BEAMTEST_MARKER",
}

func nodeEnv(t testing.TB, opts Options, dir, marker string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		if !contains(scrubbedEnv, key) {
			env = append(env, kv)
		}
	}
	// A private HOME keeps ~/.erlang.cookie and ~/.erlang out of the test.
	env = append(env, "HOME="+dir, "BEAMTEST_AGENT="+agentSource, "BEAMTEST_MARKER="+marker)
	if opts.EpmdPort != 0 {
		env = append(env, "ERL_EPMD_PORT="+strconv.Itoa(opts.EpmdPort))
	}
	if opts.Inetrc != "" {
		env = append(env, "ERL_INETRC="+opts.Inetrc)
	}
	if opts.Kind == KindElixir && opts.Erl != "erl" {
		env = append(env, "PATH="+erlShimDir(t, opts.Erl)+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	return append(env, opts.Env...)
}

// erlShimDir makes a directory whose "erl" is the given binary, so the
// elixir launcher (which runs "erl" from PATH) uses it.
func erlShimDir(t testing.TB, erl string) string {
	t.Helper()
	target, err := exec.LookPath(erl)
	if err != nil {
		t.Fatalf("beamtest: erl binary %q: %v", erl, err)
	}
	if target, err = filepath.Abs(target); err != nil {
		t.Fatalf("beamtest: erl binary %q: %v", erl, err)
	}
	dir := t.TempDir()
	if err := os.Symlink(target, filepath.Join(dir, "erl")); err != nil {
		t.Fatalf("beamtest: erl shim: %v", err)
	}
	return dir
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func randomHex(t testing.TB, nbytes int) string {
	b := make([]byte, nbytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("beamtest: random: %v", err)
	}
	return hex.EncodeToString(b)
}

// start launches the VM with pipes for stdin, stdout and stderr, and the
// goroutines that read them and reap the process.
func (n *Node) start(t testing.TB) {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatalf("beamtest: pipe: %v", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatalf("beamtest: pipe: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatalf("beamtest: pipe: %v", err)
	}
	n.cmd.Stdin, n.cmd.Stdout, n.cmd.Stderr = inR, outW, errW
	err = n.cmd.Start()
	// The child holds its ends now; ours would keep EOF from ever arriving.
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		t.Fatalf("beamtest: start %s: %v", n.label, err)
	}
	n.stdin = inW
	n.readers = []*os.File{outR, errR}
	n.readWG.Add(2)
	go n.readStdout(outR)
	go n.readStderr(errR)
	go func() {
		n.exitErr = n.cmd.Wait()
		close(n.exited)
	}()
}

func (n *Node) readStdout(r io.Reader) {
	defer n.readWG.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxOutputLine)
	prefix := n.marker + " "
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, prefix):
			n.deliver(strings.TrimPrefix(line, prefix))
		case line == "":
			// the agent's reply separator
		default:
			n.logLine("stdout", line)
		}
	}
	if err := sc.Err(); err != nil {
		n.logLine("beamtest", "stdout reader: "+err.Error())
		_, _ = io.Copy(io.Discard, r) // keep the VM from blocking on a full pipe
	}
}

func (n *Node) readStderr(r io.Reader) {
	defer n.readWG.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxOutputLine)
	for sc.Scan() {
		n.logLine("stderr", sc.Text())
	}
	if err := sc.Err(); err != nil {
		n.logLine("beamtest", "stderr reader: "+err.Error())
		_, _ = io.Copy(io.Discard, r)
	}
}

// deliver parses "<id> <status> <base64>" and hands it to the waiting eval.
func (n *Node) deliver(frame string) {
	fields := strings.Fields(frame)
	if len(fields) != 3 {
		n.logLine("beamtest", "malformed agent frame: "+frame)
		return
	}
	id, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		n.logLine("beamtest", "malformed agent frame id: "+frame)
		return
	}
	text, err := base64.StdEncoding.DecodeString(fields[2])
	if err != nil {
		n.logLine("beamtest", "malformed agent frame payload: "+frame)
		return
	}
	r := agentReply{status: fields[1], text: string(text)}

	n.mu.Lock()
	fmt.Fprintf(&n.output, "[beamtest reply %d %s] %s\n", id, r.status, r.text)
	ch, ok := n.pending[id]
	delete(n.pending, id)
	n.mu.Unlock()
	if ok {
		ch <- r // buffered, one reply per id
	}
}

// logLine records a line of node output and logs it while the test runs.
func (n *Node) logLine(stream, line string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.output.WriteString(line)
	n.output.WriteByte('\n')
	if !n.logClosed {
		n.t.Logf("%s %s: %s", n.label, stream, line)
	}
}

// Output returns everything the node printed so far: stdout and stderr
// lines and the decoded agent replies, but not the requests.
func (n *Node) Output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.output.String()
}

// Done is closed once the node's VM has exited.
func (n *Node) Done() <-chan struct{} { return n.exited }

// Atom returns the node name as a quoted Erlang atom, for use in
// expressions: fmt.Sprintf("net_adm:ping(%s)", prod.Atom()).
func (n *Node) Atom() string { return ErlAtom(n.Name) }

// ErlAtom quotes s as an Erlang atom literal.
func ErlAtom(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

// ErlBinary returns an Erlang expression for the UTF-8 binary s that is
// safe for any content.
func ErlBinary(s string) string {
	return fmt.Sprintf(`base64:decode(<<"%s">>)`, base64.StdEncoding.EncodeToString([]byte(s)))
}

// Eval evaluates an Erlang expression (a trailing dot is optional) on the
// node and returns the value printed on one line, like ~p without line
// breaks. An exception is not a test failure: Eval returns the printed
// {beamtest_error, Class, Reason}. A timeout or a dead agent fails the test.
func (n *Node) Eval(t testing.TB, expr string) string {
	t.Helper()
	reply, err := n.EvalErr(expr)
	var evalErr *EvalError
	if err != nil && !errors.As(err, &evalErr) {
		t.Fatalf("%v\nnode output:\n%s", err, n.Output())
	}
	return reply
}

// EvalErr is Eval without a test: it returns *EvalError when the expression
// raised (with the printed reply), and ErrEvalTimeout or ErrAgentDead
// (wrapped) when no reply came.
func (n *Node) EvalErr(expr string) (string, error) {
	return n.request("p", expr)
}

// EvalString evaluates an expression whose value is chardata (a string,
// binary or iolist) and returns that text itself, not its printed form.
// A value that is not chardata fails the test.
func (n *Node) EvalString(t testing.TB, expr string) string {
	t.Helper()
	reply, err := n.request("s", expr)
	if err != nil {
		t.Fatalf("%v\nnode output:\n%s", err, n.Output())
	}
	return reply
}

// EvalElixir evaluates Elixir code with Code.eval_string on a KindElixir
// node and returns inspect/1 of the result, e.g. ":pong". Failures fail the
// test.
func (n *Node) EvalElixir(t testing.TB, code string) string {
	t.Helper()
	expr := fmt.Sprintf(
		`'Elixir.Kernel':inspect(element(1, 'Elixir.Code':eval_string(%s)), [{limit, infinity}, {printable_limit, infinity}])`,
		ErlBinary(code))
	return n.EvalString(t, expr)
}

func (n *Node) request(mode, expr string) (string, error) {
	src := strings.TrimSpace(expr)
	if !strings.HasSuffix(src, ".") {
		src += "\n."
	}
	src += "\n"

	select {
	case <-n.exited:
		return "", fmt.Errorf("%w: %s exited: %v", ErrAgentDead, n.label, n.exitErr)
	default:
	}

	id := n.nextID.Add(1)
	ch := make(chan agentReply, 1)
	n.mu.Lock()
	n.pending[id] = ch
	n.mu.Unlock()
	forget := func() {
		n.mu.Lock()
		delete(n.pending, id)
		n.mu.Unlock()
	}

	line := fmt.Sprintf("%d %s %s\n", id, mode, base64.StdEncoding.EncodeToString([]byte(src)))
	n.writeMu.Lock()
	_, err := io.WriteString(n.stdin, line)
	n.writeMu.Unlock()
	if err != nil {
		forget()
		return "", fmt.Errorf("%w: %s: write request: %v", ErrAgentDead, n.label, err)
	}

	timer := time.NewTimer(n.Opts.EvalTimeout)
	defer timer.Stop()
	var r agentReply
	select {
	case r = <-ch:
	case <-n.exited:
		select {
		case r = <-ch: // the reply made it out before the VM went away
		default:
			forget()
			return "", fmt.Errorf("%w: %s exited during %q: %v", ErrAgentDead, n.label, expr, n.exitErr)
		}
	case <-timer.C:
		forget()
		return "", fmt.Errorf("%w: %s: no reply to %q within %v", ErrEvalTimeout, n.label, expr, n.Opts.EvalTimeout)
	}
	if r.status != "ok" {
		return r.text, &EvalError{Expr: expr, Reply: r.text}
	}
	return r.text, nil
}

// Stop stops the node: it closes the agent's stdin (the agent then calls
// init:stop()), waits a grace period, then kills the node's process group.
// It runs automatically in t.Cleanup; calling it again is a no-op.
func (n *Node) Stop() {
	n.stopped.Do(func() {
		n.stdin.Close()
		select {
		case <-n.exited:
		case <-time.After(stopGrace):
			n.logLine("beamtest", fmt.Sprintf("no exit %v after init:stop(); killing", stopGrace))
			n.kill()
		}
		n.finish()
	})
}

// Kill kills the node's process group at once, as a crash would, and waits
// for it to be reaped. Later evals fail with ErrAgentDead.
func (n *Node) Kill() {
	n.stopped.Do(func() {
		n.stdin.Close()
		n.kill()
		n.finish()
	})
}

func (n *Node) kill() {
	select {
	case <-n.exited:
		return // reaped: the pid may belong to someone else now
	default:
	}
	killGroup(n.cmd.Process)
	select {
	case <-n.exited:
	case <-time.After(killWait):
		n.logLine("beamtest", fmt.Sprintf("pid %d not reaped %v after SIGKILL", n.cmd.Process.Pid, killWait))
	}
}

// finish waits for the output readers, closing the pipes if a leftover
// child still holds them, and stops logging to the test.
func (n *Node) finish() {
	done := make(chan struct{})
	go func() { n.readWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(readerWait):
		for _, r := range n.readers {
			r.Close()
		}
		<-done
	}
	n.mu.Lock()
	n.logClosed = true
	n.mu.Unlock()
}

// DistPort returns the node's distribution listen port as registered in
// its epmd (Options.EpmdPort).
func (n *Node) DistPort(t testing.TB) int {
	t.Helper()
	alive, _, ok := strings.Cut(n.Name, "@")
	if !ok || n.Name == "nonode@nohost" {
		t.Fatalf("beamtest: %s is not distributed", n.label)
	}
	got := n.Eval(t, fmt.Sprintf(`{port, P, _} = erl_epmd:port_please(%q, {127,0,0,1}), P`, alive))
	port, err := strconv.Atoi(got)
	if err != nil {
		t.Fatalf("beamtest: %s dist port: %s", n.label, got)
	}
	return port
}
