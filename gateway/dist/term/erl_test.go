package term

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// erlServer is one `erl -noshell` process answering a line protocol on
// stdin/stdout, so a test pays the BEAM start-up once:
//
//	E <expr>        -> hex(term_to_binary(T)) for each T in the list <expr>, space separated
//	C <hexA> <hexB> -> true | false: binary_to_term(A) =:= binary_to_term(B)
//	D <hex>         -> ok | badarg: whether binary_to_term accepts the bytes
const erlServerSrc = `
io:setopts([binary]),
Eval = fun(S) ->
    {ok, Ts, _} = erl_scan:string(binary_to_list(S) ++ "."),
    {ok, Es} = erl_parse:parse_exprs(Ts),
    {value, V, _} = erl_eval:exprs(Es, []),
    V
end,
B2T = fun(H) -> binary_to_term(binary:decode_hex(H)) end,
Loop = fun L() ->
    case io:get_line("") of
        eof -> halt(0);
        Line0 ->
            Line = string:trim(Line0, trailing, "\n"),
            Reply = try
                case Line of
                    <<"E ", S/binary>> ->
                        lists:join(" ", [binary:encode_hex(term_to_binary(T)) || T <- Eval(S)]);
                    <<"C ", R/binary>> ->
                        [A, B] = binary:split(R, <<" ">>),
                        atom_to_list(B2T(A) =:= B2T(B));
                    <<"D ", R/binary>> ->
                        try B2T(R) of _ -> "ok" catch _:_ -> "badarg" end;
                    <<"D">> ->
                        try B2T(<<>>) of _ -> "ok" catch _:_ -> "badarg" end
                end
            catch C:E -> io_lib:format("crash ~p:~p", [C, E])
            end,
            io:put_chars([Reply, "\n"]),
            L()
    end
end,
Loop().
`

type erlServer struct {
	t     *testing.T
	stdin io.WriteCloser
	out   *bufio.Reader
	cmd   *exec.Cmd
	mu    sync.Mutex
}

// startErl starts the BEAM helper or skips the test when erl is missing.
func startErl(t *testing.T) *erlServer {
	t.Helper()
	path, err := exec.LookPath("erl")
	if err != nil {
		t.Skip("erl not found: install Erlang/OTP (Debian package erlang-base) to run the differential tests against binary_to_term")
	}
	cmd := exec.Command(path, "-noshell", "-eval", erlServerSrc)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if stderr.Len() > 0 {
			t.Logf("erl stderr: %s", stderr.String())
		}
	})
	return &erlServer{t: t, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<20), cmd: cmd}
}

// ask sends one request line and returns the reply line, failing the test
// if erl does not answer within a minute.
func (e *erlServer) ask(req string) string {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		if _, err := io.WriteString(e.stdin, req+"\n"); err != nil {
			ch <- result{err: err}
			return
		}
		line, err := e.out.ReadString('\n')
		ch <- result{strings.TrimSuffix(line, "\n"), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			e.t.Fatalf("erl: %v", r.err)
		}
		if strings.HasPrefix(r.line, "crash") {
			e.t.Fatalf("erl failed on %.200s: %s", req, r.line)
		}
		return r.line
	case <-time.After(time.Minute):
		e.cmd.Process.Kill()
		e.t.Fatalf("erl did not answer %.200s", req)
	}
	return ""
}

// encodings evaluates an Erlang list expression and returns
// term_to_binary of each element.
func (e *erlServer) encodings(expr string) [][]byte {
	e.t.Helper()
	var out [][]byte
	for _, h := range strings.Fields(e.ask("E " + strings.ReplaceAll(expr, "\n", " "))) {
		raw, err := hex.DecodeString(h)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

// erlTerms is a broad sample of what production and engineers' nodes send.
const erlTerms = `
Pid = binary_to_term(<<131,88,119,9,"prod@host",0,0,0,87,0,0,0,3,0,0,0,7>>),
Port = binary_to_term(<<131,89,119,9,"prod@host",0,0,0,5,0,0,0,7>>),
V4Port = binary_to_term(<<131,120,119,9,"prod@host",0,0,0,1,0,0,0,0,0,0,0,7>>),
Ref = binary_to_term(<<131,90,0,3,119,9,"prod@host",0,0,0,7,0,0,0,1,0,0,0,2,0,0,0,3>>),
Deep = lists:foldl(fun(_, A) -> [A] end, x, lists:seq(1, 90)),
DeepT = lists:foldl(fun(_, A) -> {A, 1} end, x, lists:seq(1, 90)),
[0, 1, 255, 256, -1, 2147483647, 2147483648, -2147483648, -2147483649,
 9223372036854775807, 9223372036854775808, -9223372036854775808, -9223372036854775809,
 18446744073709551616, -18446744073709551616, 1 bsl 1000, -(1 bsl 2000), 1 bsl 4000,
 0.0, 1.5, -2.25e-300, 1.7976931348623157e308, 5.0e-324, 3.141592653589793,
 ok, '', 'Hello World', 'with\'quote', list_to_atom([16#1F600, $a]), binary_to_atom(<<"h", 195, 169>>, utf8),
 list_to_atom(lists:duplicate(255, $z)), list_to_atom(lists:duplicate(255, 16#1F600)),
 <<>>, <<"hello">>, <<1,2,3,255>>, <<1:1>>, <<1,2,3:5>>, binary:copy(<<"x">>, 70000),
 "", "abc", [1,2,3], [256, 1000], lists:seq(1, 70000), [a|b], [1,2|3], [alias|make_ref()], [alias|Ref],
 {}, {a}, {a, b, c}, list_to_tuple(lists:seq(1, 300)), [], [[]], [{}],
 #{}, #{a => 1}, #{{t, 1} => <<"bin">>, <<"k">> => [l], [1,2] => #{x => y}, 1.0 => 1, 1 => 1.0},
 maps:from_list([{I, I * I} || I <- lists:seq(1, 100)]),
 maps:from_list([{integer_to_binary(I), {I}} || I <- lists:seq(1, 40)]),
 #{#{a => b} => #{}},
 self(), make_ref(), Pid, Port, V4Port, Ref, hd(erlang:ports()),
 fun(X) -> X end, fun(X) -> {X, Pid} end, fun lists:map/2, fun erlang:node/0, fun os:cmd/1,
 {erpc, execute_call, [make_ref(), observer_backend, sys_info, []]},
 {'$gen_call', {self(), [alias|make_ref()]}, {call, erlang, node, [], user}},
 Deep, DeepT, {[Deep]}, [<<"mixed">>, "str", 'atom', 42, 4.2, {}, #{}]
]
`

// TestDifferentialRoundTrip: every term_to_binary output decodes in Go,
// and Go's re-encoding is =:= to the original under binary_to_term.
func TestDifferentialRoundTrip(t *testing.T) {
	erl := startErl(t)
	encs := erl.encodings(erlTerms)
	if len(encs) < 75 {
		t.Fatalf("erl produced only %d terms", len(encs))
	}
	for i, orig := range encs {
		v, err := Unmarshal(orig, nil)
		if err != nil {
			t.Errorf("term %d: Unmarshal(% x...): %v", i, orig[:min(len(orig), 40)], err)
			continue
		}
		n, err := Skip(orig, nil, nil)
		if err != nil || n != len(orig) {
			t.Errorf("term %d: Skip = %d, %v", i, n, err)
		}
		ours, err := Marshal(v)
		if err != nil {
			t.Errorf("term %d: Marshal(%s): %v", i, Format(v, 200), err)
			continue
		}
		if got := erl.ask("C " + hex.EncodeToString(orig) + " " + hex.EncodeToString(ours)); got != "true" {
			t.Errorf("term %d: binary_to_term of Go's encoding of %s is not =:= the original (%s)", i, Format(v, 200), got)
		}
		back, err := Unmarshal(ours, nil)
		if err != nil || !Equal(back, v) {
			t.Errorf("term %d: Go round trip of %s: %v", i, Format(v, 200), err)
		}
	}
}

// hostileInputs are edge and malformed encodings; Go may refuse more of
// them than Erlang does, never fewer.
func hostileInputs() [][]byte {
	node := sa("n@h")
	long := strings.Repeat("a", 255)
	in := [][]byte{
		b(), b(131), b(130, 106), b(131, 106, 106),
		b(131, 80, u32(1), 0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01),
		b(131, 121, u32(0), 106), b(131, 117, u32(0), sa("a"), sa("m"), 97, 1, 97, 1),
		b(131, 82, 0), b(131, 68, 0),
		b(131, 119, 1, 0xff), b(131, 119, 3, 0xed, 0xa0, 0x80), b(131, 119, 2, 0xc0, 0x80),
		b(131, 118, u16(255), long), b(131, 118, u16(256), long, "a"), b(131, 100, u16(256), long, "a"),
		b(131, 115, 2, 0xe9, 0xff), b(131, 100, u16(1), 0x80),
		b(131, 108, u32(0), sa("a")), b(131, 108, u32(0), 106), b(131, 108, u32(1), 97, 1, 108, u32(1), 97, 2, 107, u16(1), "z"),
		b(131, 108, u32(0xffffffff)), b(131, 105, u32(0xffffffff)), b(131, 116, u32(0xffffffff)),
		b(131, 109, u32(0xffffffff)), b(131, 111, u32(0xffffffff), 0),
		b(131, 77, u32(0), 0), b(131, 77, u32(0), 8), b(131, 77, u32(1), 0, 1), b(131, 77, u32(1), 8, 1),
		b(131, 77, u32(1), 3, 0xff), b(131, 77, u32(1), 9, 1),
		b(131, 110, 0, 0), b(131, 110, 0, 1), b(131, 110, 1, 2, 5), b(131, 110, 2, 0, 0, 0),
		b(131, 110, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
		b(131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0), b(131, 70, 0xff, 0xf0, 0, 0, 0, 0, 0, 0), b(131, 70, 0x80, 0, 0, 0, 0, 0, 0, 0),
		b(131, 99, "1.5", make([]byte, 28)), b(131, 99, "1.5e3", make([]byte, 26)), b(131, 99, "-1.5E+03", make([]byte, 23)),
		b(131, 99, "1.5e-3", make([]byte, 25)), b(131, 99, " 1.5", make([]byte, 27)), b(131, 99, "1.5", 0, "x", make([]byte, 26)),
		b(131, 99, "0x1p3", make([]byte, 26)), b(131, 99, "1e400", make([]byte, 26)), b(131, 99, "1.0e400", make([]byte, 24)),
		b(131, 99, "nan", make([]byte, 28)), b(131, 99, "5", make([]byte, 30)), b(131, 99, "1.", make([]byte, 29)),
		b(131, 99, "1.5e", make([]byte, 27)), b(131, 99, strings.Repeat("1", 29)+".5"),
		b(131, 90, u16(0), node, u32(0)), b(131, 90, u16(6), node, u32(0), make([]byte, 24)),
		b(131, 90, u16(5), node, u32(0), make([]byte, 20)), b(131, 114, u16(3), node, 1, make([]byte, 12)),
		b(131, 114, u16(4), node, 1, make([]byte, 16)), b(131, 114, u16(5), node, 1, make([]byte, 20)),
		b(131, 114, u16(0), node, 1), b(131, 90, u16(4), node, u32(1), make([]byte, 16)),
		b(131, 101, node, u32(1), 1), b(131, 102, node, u32(1), 1), b(131, 103, node, u32(1), u32(1), 1),
		b(131, 88, 97, 1, u32(1), u32(0), u32(0)), b(131, 88, 106, u32(1), u32(0), u32(0)),
		b(131, 88, sa("nohost"), u32(1), u32(0), u32(0)), b(131, 88, sa(""), u32(1), u32(0), u32(0)),
		b(131, 88, node, u32(0xffffffff), u32(0xffffffff), u32(0xffffffff)),
		b(131, 120, node, make([]byte, 8), u32(1)), b(131, 120, node, 0xff, make([]byte, 7), u32(1)),
		b(131, 116, u32(2), sa("a"), 97, 1, 100, u16(1), "a", 97, 2),
		b(131, 116, u32(2), 107, u16(1), "a", 97, 1, 108, u32(1), 97, 'a', 106, 97, 2),
		b(131, 116, u32(2), 110, 1, 0, 5, 97, 1, 97, 5, 97, 2),
		b(131, 116, u32(2), 70, 0, 0, 0, 0, 0, 0, 0, 0, 97, 1, 70, 0x80, 0, 0, 0, 0, 0, 0, 0, 97, 2),
		b(131, 113, sa("os"), sa("cmd"), 97, 1), b(131, 113, sa("os"), sa("cmd"), 98, u32(1)),
		b(131, 113, 97, 1, sa("cmd"), 97, 1),
		b(131, 104, 1), b(131, 108, u32(1), 97, 1),
	}
	// Nesting around the depth limit, and far beyond it.
	for _, depth := range []int{99, 100, 101, 5000} {
		x := []byte{131}
		for range depth {
			x = append(x, 104, 1)
		}
		in = append(in, append(x, 106))
	}
	return in
}

// TestDifferentialHostile feeds edge inputs to both decoders: whatever Go
// accepts, binary_to_term must accept too.
func TestDifferentialHostile(t *testing.T) {
	erl := startErl(t)
	var seeds [][]byte
	seeds = append(seeds, hostileInputs()...)
	seeds = append(seeds, erl.encodings(erlTerms)...)
	// Single-byte corruptions of real encodings. Identifiers are moved to
	// another node first: binary_to_term also checks the words of pids and
	// references that name its own node, which Decode cannot do (it does
	// not know which node will decode the term).
	base := erl.encodings(`[{ok, [alias|make_ref()], #{a => <<1:3>>}, fun os:cmd/1, self(), -1 bsl 70, 2.5, "s"},
		fun(X) -> {X, self()} end, erlang:list_to_pid("<0.1.2>"), hd(erlang:ports())]`)
	for _, enc := range base {
		enc = bytes.ReplaceAll(enc, []byte("nonode@nohost"), []byte("remote@nohost"))
		for i := 1; i < len(enc); i++ {
			for _, delta := range []byte{1, 0x7f, 0xff} {
				c := bytes.Clone(enc)
				c[i] += delta
				seeds = append(seeds, c)
			}
			seeds = append(seeds, enc[:i])
		}
	}
	// The committed fuzz corpus, and optionally another corpus directory
	// (such as the fuzz cache: $(go env GOCACHE)/fuzz/beamgate/gateway/dist/term/FuzzDecode).
	dirs := []string{filepath.Join("testdata", "fuzz", "FuzzDecode")}
	if extra := os.Getenv("TERM_EXTRA_CORPUS"); extra != "" {
		dirs = append(dirs, extra)
	}
	for _, dir := range dirs {
		seeds = append(seeds, readCorpus(t, dir)...)
	}
	accepted := 0
	for _, in := range seeds {
		_, goErr := Unmarshal(in, nil)
		_, skipN, _ := Decode(in, nil)
		if n, err := Skip(in, nil, nil); (err == nil) != (skipN > 0) || (err == nil && n != skipN) {
			t.Errorf("% x: Skip = %d, %v; Decode n = %d", in, n, err, skipN)
		}
		if goErr != nil {
			continue
		}
		accepted++
		if got := erl.ask("D " + hex.EncodeToString(in)); got != "ok" {
			t.Errorf("Go accepts % x but binary_to_term says %s", in[:min(len(in), 64)], got)
		}
	}
	t.Logf("%d inputs, %d accepted by Go (all accepted by binary_to_term)", len(seeds), accepted)
}

// readCorpus reads the []byte inputs of a go fuzz corpus directory.
func readCorpus(t *testing.T, dir string) [][]byte {
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a fuzz corpus file", f.Name())
		}
		lit, ok := strings.CutPrefix(lines[1], "[]byte(")
		if !ok || !strings.HasSuffix(lit, ")") {
			t.Fatalf("%s: not a []byte corpus entry", f.Name())
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		out = append(out, []byte(s))
	}
	return out
}
