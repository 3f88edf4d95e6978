package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zaptest"
)

// rsyslogBinary finds rsyslogd (Debian package rsyslog; .ci/run installs
// it). Without it the test is skipped, or fails under CI=true.
func rsyslogBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("rsyslogd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/rsyslogd"); err == nil {
		return "/usr/sbin/rsyslogd"
	}
	const msg = "rsyslogd not installed (Debian: apt-get install rsyslog)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// rsyslog is an rsyslogd of the test's own: its config, work directory,
// sockets and output files are all in a temp dir. It listens on TCP
// (imtcp, 127.0.0.1) and on a unix datagram socket (imuxsock, not
// /dev/log), and writes each message of each input to its own file as
//
//	FACILITY SEVERITY HOSTNAME APP-NAME MSGID STRUCTURED-DATA MSG
type rsyslog struct {
	t    *testing.T
	bin  string
	dir  string
	conf string
	port int
	sock string

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr bytes.Buffer
	exited chan struct{}
}

func newRsyslog(t *testing.T) *rsyslog {
	r := &rsyslog{t: t, bin: rsyslogBinary(t), dir: t.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r.sock = filepath.Join(r.dir, "log.sock")
	work := filepath.Join(r.dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	// No imklog, no /dev/log, nothing under /var: only what is below.
	// maxMessageSize above the shipper's 64 KiB stream bound; rate
	// limiting off; the RFC 5424 parser for the unix socket too.
	conf := fmt.Sprintf(`global(workDirectory=%[1]q maxMessageSize="128k")
module(load="imuxsock" SysSock.Use="off")
module(load="imtcp")
template(name="raw" type="string" string="%%syslogfacility%% %%syslogseverity%% %%hostname%% %%app-name%% %%msgid%% %%structured-data%% %%msg%%\n")
ruleset(name="tcp") {
	action(type="omfile" file=%[2]q template="raw" ioBufferSize="256k" flushOnTXEnd="on")
}
ruleset(name="unix") {
	action(type="omfile" file=%[3]q template="raw" ioBufferSize="256k" flushOnTXEnd="on")
}
input(type="imtcp" address="127.0.0.1" port="%[4]d" ruleset="tcp")
input(type="imuxsock" socket=%[5]q ruleset="unix" useSpecialParser="off" parseHostname="on" rateLimit.interval="0")
`, work, r.out("tcp"), r.out("unix"), r.port, r.sock)
	r.conf = filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(r.bin, "-N1", "-f", r.conf).CombinedOutput()
	if err != nil {
		t.Fatalf("rsyslogd -N1 (config check): %v\n%s", err, out)
	}
	t.Cleanup(r.kill)
	return r
}

func (r *rsyslog) out(input string) string { return filepath.Join(r.dir, input+".log") }

func (r *rsyslog) version() string {
	out, _ := exec.Command(r.bin, "-v").Output()
	first, _, _ := strings.Cut(string(out), "\n")
	first, _, _ = strings.Cut(first, " compiled with")
	return strings.Join(strings.Fields(first), " ")
}

// start runs rsyslogd -n (foreground) and waits until both inputs accept.
func (r *rsyslog) start() {
	r.t.Helper()
	r.mu.Lock()
	cmd := exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &r.stderr, &r.stderr
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		r.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			r.t.Fatalf("rsyslogd exited: %s", r.output())
		default:
		}
		tc, terr := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)))
		if terr == nil {
			tc.Close()
		}
		uc, uerr := net.Dial("unixgram", r.sock)
		if uerr == nil {
			uc.Close()
		}
		if terr == nil && uerr == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd not accepting (tcp: %v, unix: %v): %s", terr, uerr, r.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs rsyslogd: whatever it had not written out is lost.
func (r *rsyslog) kill() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

func (r *rsyslog) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

// rsyslogLine is one line of an output file.
type rsyslogLine struct {
	facility, severity int
	host, app, msgid   string
	params             map[string]string
	msg                string
}

// read parses an output file. A line cut by the kill (no newline at the
// end of the file) is left out.
func (r *rsyslog) read(input string) []rsyslogLine {
	data, err := os.ReadFile(r.out(input))
	if err != nil {
		return nil
	}
	var out []rsyslogLine
	for line := range strings.SplitSeq(string(data), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 6)
		if len(f) != 6 {
			r.t.Errorf("%s: short line %q", input, line)
			continue
		}
		var l rsyslogLine
		l.facility, _ = strconv.Atoi(f[0])
		l.severity, _ = strconv.Atoi(f[1])
		l.host, l.app, l.msgid = f[2], f[3], f[4]
		var perr error
		_, l.params, l.msg, perr = splitSD(f[5])
		if perr != nil {
			r.t.Errorf("%s: %v", input, perr)
			continue
		}
		out = append(out, l)
	}
	return out
}

// seqs returns the distinct seqs in an output file.
func (r *rsyslog) seqs(input string) map[uint64]bool {
	got := map[uint64]bool{}
	for _, l := range r.read(input) {
		if seq, err := strconv.ParseUint(l.params["seq"], 10, 64); err == nil {
			got[seq] = true
		}
	}
	return got
}

// TestSyslogRsyslog ships a real audit log (a few hundred records, a
// rotation, a pid, non-ASCII, two records over the datagram bound) to a
// real rsyslogd over TCP and over its unix socket, SIGKILLs rsyslogd in
// the middle and starts it again. Every record must arrive, in order
// (repeats allowed: at least once, deduped by seq), with MSG byte for byte
// the line in the file.
func TestSyslogRsyslog(t *testing.T) {
	rs := newRsyslog(t)
	t.Logf("%s", rs.version())
	rs.start()

	const n = 600
	for _, tc := range []struct{ input, network, addr string }{
		{"tcp", "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(rs.port))},
		{"unix", "unix", rs.sock},
	} {
		t.Run(tc.input, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.jsonl")
			l := shipOpen(t, path, Options{})
			shipAppend(t, l, 0, 50)
			d, err := NewSyslog(tc.network, tc.addr, SyslogOptions{Hostname: "bastion-test"})
			if err != nil {
				t.Fatal(err)
			}
			s := &Shipper{
				Path: path, Dest: d, StateFile: filepath.Join(dir, "ship.state"),
				Poll: 10 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
				Log: zaptest.NewLogger(t),
			}
			stop := runShipper(t, s)

			// The gateway keeps writing while rsyslogd dies and comes back.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				for i := 50; i < n; i++ {
					r := shipTestRecord(i)
					switch i {
					case 120:
						r.Args = strings.Repeat("ü✓", 15000) // 75 KiB: over the 64 KiB stream bound
					case 121:
						r.Args = strings.Repeat("é", 6000) // 12 KiB: over the 8 KiB datagram bound
					}
					if err := l.Append(ctx, r); err != nil {
						t.Errorf("Append: %v", err)
						return
					}
					if i == 250 {
						if err := l.Rotate(); err != nil {
							t.Errorf("Rotate: %v", err)
							return
						}
					}
					time.Sleep(4 * time.Millisecond)
				}
			}()
			// Kill it once some records are confirmed: only the ones after
			// those may be sent again.
			shipWait(t, 20*time.Second, "100 records confirmed", func() bool { return s.Stats().Shipped >= 100 })
			rs.kill()
			confirmed := s.Stats().ShipSeq
			before := len(rs.seqs(tc.input))
			time.Sleep(300 * time.Millisecond)
			rs.start()
			<-wrote
			head, _ := l.Head()
			shipWait(t, 30*time.Second, "every record at rsyslog", func() bool { return rs.seqs(tc.input)[head] })
			shipWait(t, 10*time.Second, "the shipper to confirm every record", func() bool { return s.Stats().ShipSeq == head })
			stop()

			bySeq, seqs := shipFileLines(t, path)
			var next uint64 = 1
			dups, truncated := 0, 0
			for _, got := range rs.read(tc.input) {
				seq, err := strconv.ParseUint(got.params["seq"], 10, 64)
				if err != nil {
					t.Fatalf("no seq: %+v", got)
				}
				switch {
				case seq == next:
					next++
				case seq < next:
					dups++
				default:
					t.Fatalf("gap: rsyslog got seq %d, expected %d", seq, next)
				}
				want := bySeq[seq]
				if got.msg != want {
					full, _ := strconv.Atoi(got.params["truncated"])
					if full != len(want) || !strings.HasPrefix(want, got.msg) || !utf8.ValidString(got.msg) {
						t.Fatalf("seq %d: rsyslog got\n%q\nwant\n%q", seq, got.msg, want)
					}
					truncated++
				}
				var rec Record
				if err := json.Unmarshal([]byte(want), &rec); err != nil {
					t.Fatal(err)
				}
				if got.facility != 10 || got.severity != SyslogSeverity(&rec) || got.host != "bastion-test" || got.app != "beamgate" ||
					got.msgid != string(rec.Event) || got.params["user"] != rec.User || got.params["decision"] != string(rec.Decision) {
					t.Fatalf("seq %d: header %+v for %s", seq, got, want)
				}
			}
			if last := seqs[len(seqs)-1]; next != last+1 || last != head {
				t.Fatalf("rsyslog got up to seq %d, the log has %d", next-1, last)
			}
			wantTrunc := 1 // the 75 KiB record over TCP
			if tc.input == "unix" {
				wantTrunc = 2 // and the 12 KiB one over the datagram socket
			}
			if truncated < wantTrunc {
				t.Errorf("%d truncated messages, want %d", truncated, wantTrunc)
			}
			if !strings.Contains(bySeq[head], "<0.50.0>") {
				t.Errorf("no pid in %s", bySeq[head])
			}
			st := s.Stats()
			if st.Errors == 0 {
				t.Errorf("stats %+v: the kill went unnoticed", st)
			}
			if dups > before-int(confirmed) {
				t.Errorf("%d duplicates: more than the %d records received but not confirmed at the kill", dups, before-int(confirmed))
			}
			if state, err := readShipState(s.StateFile); err != nil || state.Seq != head {
				t.Errorf("state file: %+v, %v; want seq %d", state, err, head)
			}
			t.Logf("%s: %d records; at the kill rsyslog had %d, %d confirmed; %d duplicates, %d truncated; stats %+v",
				tc.input, len(seqs), before, confirmed, dups, truncated, st)
		})
	}
}
