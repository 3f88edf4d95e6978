package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zaptest"
)

// shipTestRecord is the i-th record of the shipping tests: every decision,
// a pid (which must stay "<0.50.0>", not "\u003c0.50.0\u003e"), non-ASCII
// text, and now and then a user name structured data must escape.
func shipTestRecord(i int) *Record {
	r := &Record{
		Event:    EventMessage,
		Session:  fmt.Sprintf("s%d", i%4),
		User:     "alice",
		Engineer: "dbg@laptop",
		Target:   "prismatic@prod-01",
		Cluster:  "prismatic",
		Dir:      DirE2P,
		Op:       "REG_SEND",
		MFA:      "erlang:process_info/2",
		Args:     fmt.Sprintf(`[<0.50.0>, %d, "é ü ✓"]`, i),
	}
	switch i % 4 {
	case 0:
		r.Decision = DecisionAllow
	case 1:
		r.Decision, r.Rule, r.Reason = DecisionDeny, "no-write", "writes are refused"
	case 2:
		r.Decision, r.Write = DecisionAllowWrite, true
	case 3:
		r.Event, r.Decision = EventSessionEnd, DecisionInfo
	}
	if i%50 == 7 {
		r.User = `ev"il\]us er`
	}
	return r
}

// shipAppend appends records from..to-1 of shipTestRecord.
func shipAppend(t testing.TB, l *Log, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := l.Append(context.Background(), shipTestRecord(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

func shipOpen(t testing.TB, path string, opts Options) *Log {
	t.Helper()
	l, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// shipFileLines returns every line of the log's files (rotated ones first)
// by seq, and the seqs in order.
func shipFileLines(t testing.TB, path string) (map[uint64]string, []uint64) {
	t.Helper()
	files, err := Segments(path)
	if err != nil {
		t.Fatal(err)
	}
	bySeq := map[uint64]string{}
	var seqs []uint64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(strings.TrimSuffix(string(data), "\n"), "\n") {
			if line == "" {
				continue
			}
			seq, ok := shipPeekSeq([]byte(line))
			if !ok {
				t.Fatalf("%s: no seq in %q", f, line)
			}
			bySeq[seq] = line
			seqs = append(seqs, seq)
		}
	}
	return bySeq, seqs
}

// shipWait polls cond until it holds or d passes.
func shipWait(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runShipper starts s.Run and returns a stop function that ends it and
// returns Run's error.
func runShipper(t *testing.T, s *Shipper) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Error("Shipper.Run did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// shippedLines splits Stdout output into lines.
func shippedLines(out string) []string {
	if out == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

// checkExact asserts got is exactly the log's lines in order.
func checkExact(t *testing.T, path string, got []string) {
	t.Helper()
	bySeq, seqs := shipFileLines(t, path)
	if len(got) != len(seqs) {
		t.Fatalf("shipped %d lines, the log has %d", len(got), len(seqs))
	}
	for i, seq := range seqs {
		if got[i] != bySeq[seq] {
			t.Fatalf("line %d differs:\n got %s\nwant %s", i+1, got[i], bySeq[seq])
		}
	}
}

func TestShipperStdoutFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l := shipOpen(t, path, Options{})
	shipAppend(t, l, 0, 20)

	var out lockedBuffer
	s := &Shipper{Path: path, Dest: NewStdout(&out), Poll: 10 * time.Millisecond, Log: zaptest.NewLogger(t)}
	stop := runShipper(t, s)
	shipAppend(t, l, 20, 60)
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	shipAppend(t, l, 60, 90)
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	shipAppend(t, l, 90, 120)
	head, _ := l.Head()
	shipWait(t, 10*time.Second, "every record on stdout", func() bool { return s.Stats().ShipSeq == head })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	got := shippedLines(out.String())
	checkExact(t, path, got)
	if !strings.Contains(out.String(), `<0.50.0>`) || strings.Contains(out.String(), `\u003c`) {
		t.Error("pid not shipped as <0.50.0>")
	}
	st := s.Stats()
	if st.Shipped != uint64(len(got)) || st.Sent != st.Shipped || st.Errors != 0 || st.Gaps != 0 || st.Skipped != 0 || st.Lag != 0 || st.HeadSeq != head {
		t.Errorf("stats %+v (head %d, %d lines)", st, head, len(got))
	}
}

// gateDest blocks every Send until open is closed.
type gateDest struct {
	open chan struct{}
	Stdout
}

func (d *gateDest) Send(line []byte, rec *Record) error {
	<-d.open
	return d.Stdout.Send(line, rec)
}

func TestShipperCatchesUpAcrossRotations(t *testing.T) {
	// The destination is stuck while the log rotates three times; the
	// shipper must then read the old files in chain order, not jump to
	// the newest active file.
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l := shipOpen(t, path, Options{})
	var out lockedBuffer
	d := &gateDest{open: make(chan struct{}), Stdout: Stdout{w: &out}}
	s := &Shipper{Path: path, Dest: d, Poll: 10 * time.Millisecond}
	stop := runShipper(t, s)
	shipAppend(t, l, 0, 10)
	shipWait(t, 5*time.Second, "the shipper to read", func() bool { return s.Stats().ReadSeq > 0 })
	for k := range 3 {
		shipAppend(t, l, 10+k*10, 20+k*10)
		if err := l.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	shipAppend(t, l, 40, 50)
	close(d.open)
	head, _ := l.Head()
	shipWait(t, 10*time.Second, "catching up", func() bool { return s.Stats().ShipSeq == head })
	stop()
	checkExact(t, path, shippedLines(out.String()))
}

func TestShipperStateFileResume(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	state := filepath.Join(dir, "ship.state")
	l := shipOpen(t, path, Options{})
	shipAppend(t, l, 0, 30)

	var out1 lockedBuffer
	s1 := &Shipper{Path: path, Dest: NewStdout(&out1), StateFile: state, Poll: 10 * time.Millisecond, StateInterval: time.Hour}
	stop := runShipper(t, s1)
	head1, hash1 := l.Head()
	shipWait(t, 5*time.Second, "first run", func() bool { return s1.Stats().ShipSeq == head1 })
	stop()
	st, err := readShipState(state)
	if err != nil || st.Seq != head1 || st.Hash != hash1 {
		t.Fatalf("state %+v, %v; want seq %d hash %s", st, err, head1, hash1)
	}

	// More records and a rotation while no shipper runs: the second run
	// resumes after head1, reading the rotated file first.
	shipAppend(t, l, 30, 40)
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	shipAppend(t, l, 40, 45)
	var out2 lockedBuffer
	s2 := &Shipper{Path: path, Dest: NewStdout(&out2), StateFile: state, FromSeq: 3, Poll: 10 * time.Millisecond}
	stop = runShipper(t, s2)
	head2, _ := l.Head()
	shipWait(t, 5*time.Second, "second run", func() bool { return s2.Stats().ShipSeq == head2 })
	stop()
	all := append(shippedLines(out1.String()), shippedLines(out2.String())...)
	checkExact(t, path, all)
	if first, _ := shipPeekSeq([]byte(shippedLines(out2.String())[0])); first != head1+1 {
		t.Errorf("second run started at seq %d, want %d", first, head1+1)
	}
	if st, _ := readShipState(state); st.Seq != head2 {
		t.Errorf("state seq %d after the second run, want %d", st.Seq, head2)
	}

	// A state file whose hash the log does not continue: shipped anyway,
	// counted and logged.
	if err := writeShipState(state, shipState{Seq: head2 - 3, Hash: GenesisHash}); err != nil {
		t.Fatal(err)
	}
	var out4 lockedBuffer
	s4 := &Shipper{Path: path, Dest: NewStdout(&out4), StateFile: state, Poll: 10 * time.Millisecond}
	stop = runShipper(t, s4)
	shipWait(t, 5*time.Second, "fourth run", func() bool { return s4.Stats().ShipSeq == head2 })
	stop()
	if st := s4.Stats(); st.Gaps != 1 || st.Shipped != 3 {
		t.Errorf("replaced chain: %+v", st)
	}

	// FromSeq without a state file: starts there, even in a rotated file.
	var out3 lockedBuffer
	s3 := &Shipper{Path: path, Dest: NewStdout(&out3), FromSeq: 12, Poll: 10 * time.Millisecond}
	stop = runShipper(t, s3)
	shipWait(t, 5*time.Second, "third run", func() bool { return s3.Stats().ShipSeq == head2 })
	stop()
	got := shippedLines(out3.String())
	if first, _ := shipPeekSeq([]byte(got[0])); first != 12 || len(got) != int(head2-11) {
		t.Errorf("FromSeq 12: first %d, %d lines, want 12 and %d", first, len(got), head2-11)
	}
}

// lossyDest accepts records into a pending list and confirms them only
// after confirmAfter later sends; crash() loses the pending ones and breaks
// the connection (the next Unacked reports it), like a receiver killed
// with records in its queue. fail makes the Send calls it names fail.
type lossyDest struct {
	mu           sync.Mutex
	got          []uint64
	lines        map[uint64]string
	pending      []uint64
	confirmAfter int
	broken       bool
	sends        int
	fail         map[int]bool
}

func (d *lossyDest) Send(line []byte, rec *Record) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sends++
	if d.broken || d.fail[d.sends] {
		d.pending, d.broken = nil, false
		return errors.New("injected send failure")
	}
	d.pending = append(d.pending, rec.Seq)
	if prev, ok := d.lines[rec.Seq]; ok && prev != string(line) {
		return fmt.Errorf("seq %d resent with different bytes", rec.Seq)
	}
	d.lines[rec.Seq] = string(line)
	for len(d.pending) > d.confirmAfter {
		d.got = append(d.got, d.pending[0])
		d.pending = d.pending[1:]
	}
	return nil
}

func (d *lossyDest) Unacked() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.broken {
		d.broken = false
		return 0, errors.New("connection lost")
	}
	return len(d.pending), nil
}

func (d *lossyDest) crash() {
	d.mu.Lock()
	d.pending, d.broken = nil, true
	d.mu.Unlock()
}

func (d *lossyDest) Close() error { return nil }

func TestShipperResendsUnconfirmed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l := shipOpen(t, path, Options{})
	d := &lossyDest{confirmAfter: 5, lines: map[uint64]string{}, fail: map[int]bool{17: true, 18: true, 40: true}}
	s := &Shipper{Path: path, Dest: d, Poll: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	stop := runShipper(t, s)
	shipAppend(t, l, 0, 60)
	shipWait(t, 5*time.Second, "60 records read", func() bool { return s.Stats().ReadSeq >= 60 })
	d.crash()
	shipAppend(t, l, 60, 100)
	// The last five stay pending (confirmAfter); one more record flushes them.
	shipWait(t, 5*time.Second, "100 records read", func() bool { return s.Stats().ReadSeq >= 100 })
	head, _ := l.Head()
	shipWait(t, 5*time.Second, "all but the last confirmed", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.got) > 0 && d.got[len(d.got)-1] >= head-5
	})
	stop()
	bySeq, seqs := shipFileLines(t, path)
	d.mu.Lock()
	defer d.mu.Unlock()
	// At least once, in order: each confirmed seq is a repeat or the next.
	var next uint64 = 1
	dups := 0
	for _, seq := range d.got {
		switch {
		case seq == next:
			next++
		case seq < next:
			dups++
		default:
			t.Fatalf("gap: got seq %d, expected %d (sequence %v)", seq, next, d.got)
		}
	}
	if next < head-4 {
		t.Fatalf("confirmed up to %d, head %d", next-1, head)
	}
	for _, seq := range seqs[:next-1] {
		if d.lines[seq] != bySeq[seq] {
			t.Fatalf("seq %d: shipped %q, file has %q", seq, d.lines[seq], bySeq[seq])
		}
	}
	st := s.Stats()
	if st.Errors < 3 || st.Resent == 0 {
		t.Errorf("stats %+v, %d duplicates: want 3+ errors and resends", st, dups)
	}
	t.Logf("stats %+v, %d duplicates", st, dups)
}

func TestShipperWaitsForCompleteLines(t *testing.T) {
	// A file written by hand: a line being written is not shipped until
	// its newline is on disk; a line that is not a record is skipped.
	dir := t.TempDir()
	src := filepath.Join(dir, "src.jsonl")
	l := shipOpen(t, src, Options{})
	shipAppend(t, l, 0, 4)
	l.Close()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")[:5]
	path := filepath.Join(dir, "audit.jsonl")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(lines[0] + lines[1] + lines[2][:40])
	var out lockedBuffer
	s := &Shipper{Path: path, Dest: NewStdout(&out), Poll: 5 * time.Millisecond}
	stop := runShipper(t, s)
	shipWait(t, 5*time.Second, "two lines", func() bool { return s.Stats().Shipped == 2 })
	time.Sleep(50 * time.Millisecond)
	if n := len(shippedLines(out.String())); n != 2 {
		t.Fatalf("shipped %d lines with the third half written", n)
	}
	f.WriteString(lines[2][40:] + "not a record\n" + lines[3][:10])
	time.Sleep(20 * time.Millisecond)
	f.WriteString(lines[3][10:] + lines[4])
	shipWait(t, 5*time.Second, "five lines", func() bool { return s.Stats().Shipped == 5 })
	stop()
	want := strings.Join([]string{lines[0], lines[1], lines[2], lines[3], lines[4]}, "")
	if out.String() != want {
		t.Errorf("shipped\n%s\nwant\n%s", out.String(), want)
	}
	if st := s.Stats(); st.Skipped != 1 {
		t.Errorf("Skipped = %d, want 1", st.Skipped)
	}
}

// shipHandFile returns the lines of a real log of n records, and an empty
// file (not a Log) to write them to by hand.
func shipHandFile(t *testing.T, n int) ([]string, *os.File, string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.jsonl")
	l := shipOpen(t, src, Options{})
	shipAppend(t, l, 0, n-1) // and log_start
	l.Close()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")[:n]
	path := filepath.Join(dir, "audit.jsonl")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return lines, f, path
}

func TestShipperTruncatedWhileFollowing(t *testing.T) {
	lines, f, path := shipHandFile(t, 6)
	f.WriteString(strings.Join(lines[:5], ""))
	var out lockedBuffer
	s := &Shipper{Path: path, Dest: NewStdout(&out), Poll: 5 * time.Millisecond}
	stop := runShipper(t, s)
	shipWait(t, 5*time.Second, "five lines", func() bool { return s.Stats().Shipped == 5 })
	// Records 4 and 5 cut off, then written again (as an attacker would,
	// edited), then record 6. What is still there is not sent again; what
	// reappears after the cut is: the receiver then holds both versions.
	f.Truncate(int64(len(strings.Join(lines[:3], ""))))
	time.Sleep(50 * time.Millisecond)
	f.WriteString(lines[3] + lines[4] + lines[5])
	shipWait(t, 5*time.Second, "eight lines", func() bool { return s.Stats().Shipped == 8 })
	time.Sleep(50 * time.Millisecond)
	stop()
	if got, want := out.String(), strings.Join(lines[:5], "")+lines[3]+lines[4]+lines[5]; got != want {
		t.Errorf("shipped\n%s\nwant\n%s", got, want)
	}
	if st := s.Stats(); st.Gaps < 2 || st.Shipped != 8 {
		t.Errorf("truncation and repeated seqs not counted: %+v", st)
	}
}

func TestShipperSkipsOverlongLine(t *testing.T) {
	lines, f, path := shipHandFile(t, 2)
	f.WriteString(lines[0] + strings.Repeat("x", MaxLineLen+100) + "\n" + lines[1])
	var out lockedBuffer
	s := &Shipper{Path: path, Dest: NewStdout(&out), Poll: 5 * time.Millisecond}
	stop := runShipper(t, s)
	shipWait(t, 5*time.Second, "two lines", func() bool { return s.Stats().Shipped == 2 })
	stop()
	if got, st := out.String(), s.Stats(); got != lines[0]+lines[1] || st.Skipped != 1 {
		t.Errorf("shipped %q, stats %+v", got, st)
	}
}

// syslogMsg is a parsed RFC 5424 message.
type syslogMsg struct {
	pri                                   int
	version, ts, host, app, procid, msgid string
	sd                                    string
	params                                map[string]string
	msg                                   string
}

// parseSyslog splits an RFC 5424 message into its header fields, its
// structured data (one element) and MSG.
func parseSyslog(m string) (syslogMsg, error) {
	var s syslogMsg
	end := strings.IndexByte(m, '>')
	if !strings.HasPrefix(m, "<") || end < 0 {
		return s, fmt.Errorf("no PRI: %q", m)
	}
	var err error
	if s.pri, err = strconv.Atoi(m[1:end]); err != nil {
		return s, fmt.Errorf("PRI %q", m[:end+1])
	}
	f := strings.SplitN(m[end+1:], " ", 7)
	if len(f) != 7 {
		return s, fmt.Errorf("short header: %q", m)
	}
	s.version, s.ts, s.host, s.app, s.procid, s.msgid = f[0], f[1], f[2], f[3], f[4], f[5]
	s.sd, s.params, s.msg, err = splitSD(f[6])
	return s, err
}

func mustParseSyslog(t testing.TB, m string) syslogMsg {
	t.Helper()
	p, err := parseSyslog(m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// splitSD parses `[id k="v" ...] MSG` (or `- MSG`) into the element, its
// unescaped params and MSG.
func splitSD(s string) (string, map[string]string, string, error) {
	params := map[string]string{}
	if rest, ok := strings.CutPrefix(s, "- "); ok {
		return "-", params, rest, nil
	}
	bad := fmt.Errorf("bad structured data: %q", s)
	if !strings.HasPrefix(s, "[") {
		return "", nil, "", bad
	}
	i := 1
	for i < len(s) && s[i] != ' ' && s[i] != ']' {
		i++
	}
	for i < len(s) && s[i] == ' ' {
		i++
		k := i
		for i < len(s) && s[i] != '=' {
			i++
		}
		if i+1 >= len(s) || s[i+1] != '"' {
			return "", nil, "", bad
		}
		key := s[k:i]
		i += 2
		var v strings.Builder
		for i < len(s) && s[i] != '"' {
			if s[i] == '\\' {
				i++
			}
			if i < len(s) {
				v.WriteByte(s[i])
			}
			i++
		}
		params[key] = v.String()
		i++
	}
	if i >= len(s) || s[i] != ']' {
		return "", nil, "", bad
	}
	sd, rest := s[:i+1], s[i+1:]
	if rest == "" {
		return sd, params, "", nil
	}
	if rest[0] != ' ' {
		return "", nil, "", bad
	}
	return sd, params, rest[1:], nil
}

func TestSyslogFormat(t *testing.T) {
	d, err := NewSyslog("tcp", "127.0.0.1:1", SyslogOptions{Hostname: "bastion 1"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		rec  Record
		pri  int
		user string
	}{
		{Record{Seq: 7, Time: at, Event: EventMessage, Decision: DecisionDeny, User: `a"b\c]d`}, 10*8 + 4, `a"b\c]d`},
		{Record{Seq: 8, Time: at, Event: EventMessage, Decision: DecisionAllowWrite, User: "bob\nx"}, 10*8 + 5, "bob?x"},
		{Record{Seq: 9, Time: at, Event: EventLogin, Decision: DecisionAllow}, 10*8 + 6, ""},
		{Record{Seq: 10, Time: at, Event: EventLogout, Decision: DecisionInfo}, 10*8 + 6, ""},
	} {
		line := []byte(`{"seq":` + strconv.FormatUint(tc.rec.Seq, 10) + `,"args":"<0.50.0> é"}`)
		m := string(d.appendMessage(nil, line, &tc.rec, SyslogMaxStream))
		p := mustParseSyslog(t, m)
		if p.pri != tc.pri || p.version != "1" || p.ts != "2026-01-02T02:04:05.123456Z" || p.host != "bastion_1" ||
			p.app != "beamgate" || p.procid != strconv.Itoa(os.Getpid()) || p.msgid != string(tc.rec.Event) {
			t.Errorf("header of %q: %+v", m, p)
		}
		if !strings.HasPrefix(p.sd, "[beamgate@32473 seq=\""+strconv.FormatUint(tc.rec.Seq, 10)+`"`) || p.params["user"] != tc.user ||
			p.params["decision"] != string(tc.rec.Decision) || p.msg != string(line) {
			t.Errorf("sd/msg of %q: %+v", m, p)
		}
	}
	if m := string(d.appendMessage(nil, []byte("x"), &Record{Seq: 1, User: `q"]`}, SyslogMaxStream)); !strings.Contains(m, ` user="q\"\]"]`) {
		t.Errorf("escaping: %q", m)
	}

	// Truncation: cut at a rune boundary, marked, within the bound.
	bomd, _ := NewSyslog("unix", "/dev/null", SyslogOptions{BOM: true, Facility: 16, MaxSize: 600})
	long := []byte(`{"seq":3,"args":"` + strings.Repeat("é", 400) + `"}`)
	m := bomd.appendMessage(nil, long, &Record{Seq: 3, Time: at, User: "u"}, bomd.maxSize(syslogUnixgram))
	p := mustParseSyslog(t, string(m))
	if len(m) > 600 || !utf8.Valid(m) || p.params["truncated"] != strconv.Itoa(len(long)) || p.pri != 16*8+6 {
		t.Errorf("truncated message (%d bytes, valid %v): %q", len(m), utf8.Valid(m), m)
	}
	if msg, ok := strings.CutPrefix(p.msg, "\xEF\xBB\xBF"); !ok || !strings.HasPrefix(string(long), msg) || len(msg) < 300 {
		t.Errorf("truncated MSG %q", p.msg)
	}
	if got := bomd.maxSize(syslogUnixgram); got != 600 {
		t.Errorf("MaxSize %d", got)
	}
	plain, _ := NewSyslog("unix", "/dev/log", SyslogOptions{})
	if plain.maxSize(syslogUnixgram) != SyslogMaxUnixgram || plain.maxSize(syslogTCP) != SyslogMaxStream || plain.maxSize(syslogUDP) != SyslogMaxUDP {
		t.Error("default sizes")
	}

	for _, bad := range []struct{ network, addr string }{{"tcp", "nohost"}, {"sctp", "x:1"}, {"unix", ""}} {
		if _, err := NewSyslog(bad.network, bad.addr, SyslogOptions{}); err == nil {
			t.Errorf("NewSyslog(%q, %q) accepted", bad.network, bad.addr)
		}
	}
	if f, err := SyslogFacility("local3"); err != nil || f != 19 {
		t.Errorf("local3 = %d, %v", f, err)
	}
	if _, err := SyslogFacility("nope"); err == nil {
		t.Error("unknown facility accepted")
	}
}

// readFrames reads RFC 6587 octet-counted frames from r.
func readFrames(r io.Reader, fn func(string)) error {
	br := bufio.NewReader(r)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return err
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil {
			return fmt.Errorf("bad frame length %q", n)
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(br, b); err != nil {
			return err
		}
		fn(string(b))
	}
}

// syslogCollector collects the MSG of received messages by seq.
type syslogCollector struct {
	mu   sync.Mutex
	seqs []uint64
	msgs map[uint64]string
	raw  []string
}

func (c *syslogCollector) add(t testing.TB, m string) {
	p, err := parseSyslog(m)
	if err != nil {
		t.Error(err)
		return
	}
	seq, err := strconv.ParseUint(p.params["seq"], 10, 64)
	if err != nil {
		t.Errorf("no seq in %q", m)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msgs == nil {
		c.msgs = map[uint64]string{}
	}
	c.seqs = append(c.seqs, seq)
	c.msgs[seq] = p.msg
	c.raw = append(c.raw, m)
}

func (c *syslogCollector) has(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.msgs[seq]
	return ok
}

// check asserts at-least-once in order, byte-identical to the file.
func (c *syslogCollector) check(t *testing.T, path string) (dups int) {
	t.Helper()
	bySeq, seqs := shipFileLines(t, path)
	c.mu.Lock()
	defer c.mu.Unlock()
	next := seqs[0]
	for _, seq := range c.seqs {
		switch {
		case seq == next:
			next++
		case seq < next:
			dups++
		default:
			t.Fatalf("gap: received seq %d, expected %d", seq, next)
		}
	}
	if next != seqs[len(seqs)-1]+1 {
		t.Fatalf("received up to seq %d, log has %d", next-1, seqs[len(seqs)-1])
	}
	for _, seq := range seqs {
		if c.msgs[seq] != bySeq[seq] {
			t.Fatalf("seq %d:\n got %q\nwant %q", seq, c.msgs[seq], bySeq[seq])
		}
	}
	return dups
}

func TestSyslogTCPReconnects(t *testing.T) {
	// A Go receiver that drops the first connection after 30 messages
	// without reading the rest: everything the shipper had not seen
	// confirmed is resent on the next connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var c syslogCollector
	go func() {
		for n := 0; ; n++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(first bool) {
				defer conn.Close()
				got := 0
				readFrames(conn, func(m string) {
					if first && got == 30 {
						conn.(*net.TCPConn).SetLinger(0) // reset, losing what is queued
						conn.Close()
						return
					}
					got++
					c.add(t, m)
				})
			}(n == 0)
		}
	}()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l := shipOpen(t, path, Options{})
	d, err := NewSyslog("tcp", ln.Addr().String(), SyslogOptions{AckDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := &Shipper{Path: path, Dest: d, Poll: 5 * time.Millisecond, MinBackoff: 10 * time.Millisecond, Log: zaptest.NewLogger(t)}
	stop := runShipper(t, s)
	for i := 0; i < 100; i++ {
		shipAppend(t, l, i, i+1)
		time.Sleep(time.Millisecond)
	}
	head, _ := l.Head()
	shipWait(t, 10*time.Second, "all records", func() bool { return c.has(head) })
	stop()
	dups := c.check(t, path)
	st := s.Stats()
	if st.Errors == 0 || st.Resent == 0 {
		t.Errorf("stats %+v: no reconnection seen", st)
	}
	t.Logf("stats %+v, %d duplicates", st, dups)
}

func TestSyslogUnixStreamFallbackAndDatagram(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []string{"unix", "unixgram"} {
		t.Run(kind, func(t *testing.T) {
			sock := filepath.Join(dir, kind+".sock")
			var c syslogCollector
			if kind == "unix" {
				ln, err := net.Listen("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				go func() {
					for {
						conn, err := ln.Accept()
						if err != nil {
							return
						}
						go func() { defer conn.Close(); readFrames(conn, func(m string) { c.add(t, m) }) }()
					}
				}()
			} else {
				pc, err := net.ListenPacket("unixgram", sock)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				go func() {
					b := make([]byte, 1<<16)
					for {
						n, _, err := pc.ReadFrom(b)
						if err != nil {
							return
						}
						c.add(t, string(b[:n]))
					}
				}()
			}
			path := filepath.Join(dir, kind+".jsonl")
			l := shipOpen(t, path, Options{})
			shipAppend(t, l, 0, 40)
			// A record over the 8 KiB datagram bound arrives cut and marked.
			big := shipTestRecord(1000)
			big.Args = strings.Repeat("ü", 6000)
			if err := l.Append(context.Background(), big); err != nil {
				t.Fatal(err)
			}
			shipAppend(t, l, 40, 50)
			d, err := NewSyslog("unix", sock, SyslogOptions{AckDelay: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			s := &Shipper{Path: path, Dest: d, Poll: 5 * time.Millisecond}
			stop := runShipper(t, s)
			head, _ := l.Head()
			shipWait(t, 10*time.Second, "all records", func() bool { return c.has(head) })
			stop()
			bySeq, _ := shipFileLines(t, path)
			c.mu.Lock()
			defer c.mu.Unlock()
			if !slices.IsSorted(c.seqs) || len(c.seqs) != len(bySeq) {
				t.Fatalf("received %v", c.seqs)
			}
			for _, m := range c.raw {
				p := mustParseSyslog(t, m)
				seq, _ := strconv.ParseUint(p.params["seq"], 10, 64)
				want := bySeq[seq]
				switch {
				case p.msg == want:
				case p.params["truncated"] == strconv.Itoa(len(want)) && strings.HasPrefix(want, p.msg) && utf8.ValidString(p.msg):
					if kind != "unixgram" || len(m) > SyslogMaxUnixgram {
						t.Errorf("seq %d truncated to %d bytes over %s", seq, len(m), kind)
					}
				default:
					t.Errorf("seq %d: got %q", seq, p.msg)
				}
			}
			if got := c.msgs[head-10]; kind == "unix" && got != bySeq[head-10] {
				t.Errorf("stream socket truncated the big record (%d bytes)", len(got))
			}
		})
	}
}
