package main

import (
	"beamgate/internal/beamtest"
	"slices"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"beamgate/audit"
)

// writeLog writes records to a new audit log at path through audit.Log.
func writeLog(t *testing.T, path string, recs ...*audit.Record) {
	t.Helper()
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, r := range recs {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func sampleRecords() []*audit.Record {
	return []*audit.Record{
		{Event: "login", User: "alice", Decision: audit.DecisionAllow, Session: "s1"},
		{Event: "message", User: "alice", Cluster: "prismatic", Target: "prismatic@prod-01", Engineer: "me@laptop",
			Decision: audit.DecisionAllow, Op: "SPAWN_REQUEST", MFA: "erlang:process_info/2", Session: "s1"},
		{Event: "message", User: "alice", Cluster: "prismatic", Target: "prismatic@prod-01", Decision: audit.DecisionDeny,
			Op: "SPAWN_REQUEST", MFA: "ets:insert/2", Reason: "write refused\x1b[31m", Session: "s1"},
		{Event: "login", User: "bob", Decision: audit.DecisionDeny, Reason: "public key not listed for user"},
	}
}

// runCLI runs the beamgate command line and returns exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditQuery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLog(t, path, sampleRecords()...)
	data, _ := os.ReadFile(path)
	nrec := strings.Count(string(data), "\n") // with the log's own records (log_start)

	code, out, errs := runCLI(t, "audit", "--file", path)
	if code != 0 || !strings.Contains(out, "TIME") || strings.Count(out, "\n") != 1+nrec {
		t.Fatalf("audit: %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "\x1b") {
		t.Error("table passes a terminal escape through")
	}
	code, out, _ = runCLI(t, "audit", "--file", path, "--user", "alice", "--decision", "deny")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "mfa=ets:insert/2") || strings.Contains(out, "bob") {
		t.Errorf("--user alice --decision deny:\n%s", out)
	}
	code, out, _ = runCLI(t, "audit", "--file", path, "--node", "prismatic@prod-01", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("--node --json: %d\n%s", code, out)
	}
	for _, l := range lines {
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Target != "prismatic@prod-01" || r.Hash == "" {
			t.Errorf("json line %q: %v %+v", l, err, r)
		}
	}
	code, out, _ = runCLI(t, "audit", "--file", path, "--cluster", "prismatic", "--session", "s1", "--json")
	if code != 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("--cluster --session: %s", out)
	}
	// Times: a duration means that long ago; RFC 3339 works; bad input is
	// explained.
	if code, out, _ = runCLI(t, "audit", "--file", path, "--since", "1h", "--json"); code != 0 || strings.Count(out, "\n") != nrec {
		t.Errorf("--since 1h: %d %s", code, out)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if code, out, _ = runCLI(t, "audit", "--file", path, "--since", future, "--json"); code != 0 || out != "" {
		t.Errorf("--since future: %d %q", code, out)
	}
	if code, out, _ = runCLI(t, "audit", "--file", path, "--until", future, "--json"); code != 0 || strings.Count(out, "\n") != nrec {
		t.Errorf("--until future: %d %q", code, out)
	}
	if code, _, errs = runCLI(t, "audit", "--file", path, "--since", "yesterday"); code != 1 || !strings.Contains(errs, "RFC 3339") {
		t.Errorf("--since yesterday: %d %s", code, errs)
	}
	if code, _, errs = runCLI(t, "audit"); code != 1 || !strings.Contains(errs, "--config FILE or --file PATH") {
		t.Errorf("no file: %d %s", code, errs)
	}
}

func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	writeLog(t, path, sampleRecords()...)
	data, _ := os.ReadFile(path)
	nrec := strings.Count(string(data), "\n")
	code, out, _ := runCLI(t, "audit", "verify", "--file", path)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("ok audit log: 1 file(s) audit.jsonl, %d records", nrec)) ||
		!strings.Contains(out, "not checked: checkpoint signatures") || !strings.Contains(out, "undetectable") {
		t.Fatalf("verify: %d %s", code, out)
	}
	lines := strings.SplitAfter(string(data), "\n")
	deny := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, `"decision":"deny"`) })
	if deny < 1 {
		t.Fatalf("no deny record in %q", data)
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"edited", strings.Join(lines[:deny], "") + strings.Replace(lines[deny], `"decision":"deny"`, `"decision":"allo"`, 1) + strings.Join(lines[deny+1:], ""),
			fmt.Sprintf("FAIL chain: audit.jsonl line %d: not a valid record", deny+1)},
		{"deleted", lines[0] + strings.Join(lines[2:], ""), "FAIL chain: audit.jsonl line 2: seq is 3, expected 2"},
		{"truncated", string(data[:len(data)-20]), fmt.Sprintf("FAIL torn: audit.jsonl line %d", nrec)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			p := filepath.Join(d, "audit.jsonl")
			os.WriteFile(p, []byte(tc.text), 0o600)
			code, out, errs := runCLI(t, "audit", "verify", "--file", p)
			if code != 1 || !strings.Contains(out, "FAILED audit log") || !strings.Contains(out, tc.want) || !strings.Contains(errs, "failed verification") {
				t.Errorf("exit %d\nstdout %s\nstderr %s", code, out, errs)
			}
		})
	}
}

func TestAuditTailFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Append(context.Background(), &audit.Record{Event: "login", User: "alice", Decision: audit.DecisionAllow})

	// Without -f, tail prints what is there and ends.
	code, out, _ := runCLI(t, "audit", "tail", "--file", path)
	if code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("tail: %d %s", code, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var buf beamtest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"audit", "tail", "-f", "--json", "--user", "carol", "--file", path}, &buf, &buf)
	}()
	if err := l.Append(context.Background(), &audit.Record{Event: "offboard", User: "carol", Decision: audit.DecisionDeny, Reason: "left"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), `"user":"carol"`) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("tail -f did not print the appended record: %q", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("tail -f exit %d: %s", code, buf.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail -f did not stop on cancel")
	}
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "alice") {
			t.Errorf("filter let alice through: %s", sc.Text())
		}
	}
}

// TestCLIAuditWhileGatewayHoldsLog: with the main log flock'ed (a running
// gateway), a command's records go to a sibling file with its own chain,
// which audit --config reads and verify checks.
func TestCLIAuditWhileGatewayHoldsLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "audit.jsonl")
	os.MkdirAll(filepath.Dir(path), 0o700)
	held, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	held.Append(context.Background(), &audit.Record{Event: "login", User: "alice", Decision: audit.DecisionAllow})
	var errb bytes.Buffer
	l, got, err := openCLIAudit(path, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, path+cliAuditSuffix) || !strings.Contains(errb.String(), "held by a running gateway") {
		t.Fatalf("sibling %q, stderr %q", got, errb.String())
	}
	l.Append(context.Background(), &audit.Record{Event: "offboard", User: "alice", Decision: audit.DecisionDeny, Reason: "test"})
	l.Close()
	held.Close()

	cfg := writeMinimalConfig(t, dir)
	code, out, errs := runCLI(t, "audit", "--config", cfg, "--json")
	if code != 0 || !strings.Contains(out, `"event":"login"`) || !strings.Contains(out, `"event":"offboard"`) {
		t.Errorf("audit --config: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "audit", "verify", "--config", cfg)
	if code != 0 || strings.Count(out, "ok ") != 2 {
		t.Errorf("verify --config: %d\n%s", code, out)
	}

	// Without a gateway, the command writes the main log itself.
	l, got, err = openCLIAudit(path, &errb)
	if err != nil || got != path {
		t.Fatalf("unlocked: %q %v", got, err)
	}
	l.Close()
}

// writeMinimalConfig writes a valid configuration with its audit log at
// dir/state/audit.jsonl and returns its path.
func writeMinimalConfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := filepath.Join(dir, "beamgate.yaml")
	os.WriteFile(cfg, []byte(`listen: 127.0.0.1:2222
host_key: ./state/host_key
audit:
  path: ./state/audit.jsonl
cookies:
  backend: file
  file: ./state/cookies.yaml
clusters:
  prismatic:
    nodes:
      - {name: prismatic@prod-01, dial: 127.0.0.2, gateway_port: 4370}
users:
  alice:
    keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice"]
    roles: [observer]
roles:
  observer:
    clusters: [prismatic]
    policy: readonly
    mode: enforce
`), 0o600)
	return cfg
}

// appendConcurrently appends n records made by rec(i) to l from 64
// goroutines, so the writer batches fsyncs; seq order is not i order.
func appendConcurrently(t *testing.T, l *audit.Log, n int, rec func(i int) *audit.Record) {
	t.Helper()
	next := make(chan int)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := l.Append(context.Background(), rec(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// jsonRecords parses the JSON lines of out.
func jsonRecords(t *testing.T, out string) []audit.Record {
	t.Helper()
	var recs []audit.Record
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, audit.MaxLineLen)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("not a JSON record: %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func sameSeqHash(t *testing.T, what string, got, want []audit.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash || got[i].Args != want[i].Args {
			t.Fatalf("%s: record %d is seq %d, want seq %d", what, i, got[i].Seq, want[i].Seq)
		}
	}
}

// TestAuditTableColumns: the table shows the engineer node, the rule and
// the args (shortened) where the event has them, and a dash otherwise.
func TestAuditTableColumns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	longArgs := "[<0.50.0>, " + strings.Repeat("x", 60) + "]"
	writeLog(t, path,
		&audit.Record{Event: "login", User: "alice", Decision: audit.DecisionAllow},
		&audit.Record{Event: "message", User: "alice", Cluster: "eu", Engineer: "dbg@laptop", Target: "app@prod1",
			Decision: audit.DecisionDeny, Rule: "readonly:ets-write", Op: "SPAWN_REQUEST", MFA: "ets:insert/2", Args: longArgs},
		&audit.Record{Event: "message", User: "alice", Cluster: "eu", Engineer: "dbg@laptop", Target: "app@prod1",
			Decision: audit.DecisionAllow, Rule: "readonly", Op: "SPAWN_REQUEST", MFA: "erlang:memory/0", Args: "[]"},
	)
	code, out, errs := runCLI(t, "audit", "--file", path, "--user", "alice") // not the log's own records
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(lines) != 4 || errs != "" {
		t.Fatalf("audit: %d\n%s%s", code, out, errs)
	}
	head := strings.Fields(lines[0])
	if strings.Join(head, " ") != "TIME SEQ EVENT USER DECISION CLUSTER ENGINEER TARGET RULE WHAT" {
		t.Fatalf("header %q", lines[0])
	}
	col := func(line int) (cols []string, what string) {
		f := strings.Fields(lines[line])
		return f[:9], strings.Join(f[9:], " ")
	}
	login, what := col(1)
	if login[6] != "-" || login[7] != "-" || login[8] != "-" || what != "-" {
		t.Errorf("login row %q: engineer, target, rule and what should be dashes", lines[1])
	}
	deny, what := col(2)
	if deny[6] != "dbg@laptop" || deny[7] != "app@prod1" || deny[8] != "readonly:ets-write" {
		t.Errorf("message row %q: engineer, target or rule missing", lines[2])
	}
	wantArgs := "args=" + string([]rune(longArgs)[:40]) + "…"
	if !strings.Contains(what, "mfa=ets:insert/2") || !strings.HasSuffix(what, wantArgs) || strings.Contains(what, longArgs) {
		t.Errorf("message row WHAT %q, want args shortened to %q", what, wantArgs)
	}
	if _, what = col(3); !strings.HasSuffix(what, "args=[]") {
		t.Errorf("short args row WHAT %q", what)
	}
	// The columns line up: ENGINEER starts at the same place in every row.
	at := strings.Index(lines[0], "ENGINEER")
	if strings.Index(lines[2], "dbg@laptop") != at || lines[1][at] != '-' {
		t.Errorf("columns not aligned:\n%s", out)
	}
}

// TestAuditNoMatch: a query with no match says so on stderr, exit 0, and
// prints nothing on stdout in --json mode.
func TestAuditNoMatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLog(t, path, sampleRecords()...)
	for _, args := range [][]string{
		{"audit", "--file", path, "--user", "carol"},
		{"audit", "--file", path, "--user", "carol", "--json"},
		{"audit", "tail", "--file", path, "--user", "carol"},
		{"audit", "tail", "--file", path, "--json", "--from-seq", "99"},
		{"audit", "tail", "--file", path, "-n", "3", "--event", "offboard"},
	} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || out != "" || strings.TrimSpace(errs) != "no records match" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args[1:], code, out, errs)
		}
	}
	// A match prints no such message.
	if code, out, errs := runCLI(t, "audit", "--file", path, "--user", "bob"); code != 0 || out == "" || errs != "" {
		t.Errorf("--user bob: %d %q %q", code, out, errs)
	}
}

// TestAuditJSONNotHTMLEscaped: a pid stays greppable as <0.50.0>, and &
// stays &, in query and tail output.
func TestAuditJSONNotHTMLEscaped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLog(t, path, &audit.Record{Event: "message", User: "alice", Decision: audit.DecisionAllow,
		Args: "[<0.50.0>, memory]", Reason: "a & b", Dest: "<0.50.0>"})
	for _, args := range [][]string{
		{"audit", "--file", path, "--json", "--user", "alice"},
		{"audit", "tail", "--file", path, "--json", "--user", "alice"},
		{"audit", "tail", "--file", path, "--json", "-n", "1"},
	} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, `"args":"[<0.50.0>, memory]"`) || !strings.Contains(out, `"dest":"<0.50.0>"`) ||
			!strings.Contains(out, `"reason":"a & b"`) || strings.Contains(out, `\u003c`) || strings.Contains(out, `\u0026`) {
			t.Errorf("%v: %d\n%s%s", args[1:], code, out, errs)
		}
		if recs := jsonRecords(t, out); len(recs) != 1 || recs[0].Args != "[<0.50.0>, memory]" || recs[0].Hash == "" {
			t.Errorf("%v: %+v", args[1:], recs)
		}
	}
}

// TestAuditTailLastBigFile: tail -n on a 100k-record log prints exactly
// the last records, with and without filters, as JSON and as a table.
func TestAuditTailLastBigFile(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100k records")
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	users := []string{"alice", "bob", "carol", "dave"}
	appendConcurrently(t, l, 100_000, func(i int) *audit.Record {
		return &audit.Record{Event: "message", User: users[i%len(users)], Engineer: "dbg@laptop", Target: "app@prod1",
			Cluster: "eu", Decision: audit.DecisionAllow, Rule: "readonly", MFA: "erlang:process_info/2",
			Args: fmt.Sprintf("[<0.%d.0>, memory]", i)}
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The reference: the last 2000 lines of the file, parsed here.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	lines = lines[:len(lines)-1] // after the final '\n'
	if len(lines) < 100_000 {
		t.Fatalf("%d records written", len(lines))
	}
	all := jsonRecords(t, strings.Join(lines[len(lines)-2000:], ""))
	last := all[len(all)-1].Seq

	for _, n := range []int{1, 7, 2000} {
		code, out, errs := runCLI(t, "audit", "tail", "--file", path, "-n", strconv.Itoa(n), "--json")
		if code != 0 || errs != "" {
			t.Fatalf("tail -n %d: %d %s", n, code, errs)
		}
		sameSeqHash(t, fmt.Sprintf("tail -n %d", n), jsonRecords(t, out), all[len(all)-n:])
	}

	// With a filter: the last n records of that user.
	var carol []audit.Record
	for _, r := range all {
		if r.User == "carol" {
			carol = append(carol, r)
		}
	}
	code, out, errs := runCLI(t, "audit", "tail", "--file", path, "-n", "5", "--user", "carol", "--json")
	if code != 0 {
		t.Fatalf("tail -n 5 --user carol: %d %s", code, errs)
	}
	sameSeqHash(t, "tail -n 5 --user carol", jsonRecords(t, out), carol[len(carol)-5:])

	// With --from-seq: the last 3 from there, or fewer if there are fewer.
	code, out, _ = runCLI(t, "audit", "tail", "--file", path, "-n", "3", "--from-seq", strconv.FormatUint(last-1, 10), "--json")
	if code != 0 {
		t.Fatal(code)
	}
	sameSeqHash(t, "tail -n 3 --from-seq last-1", jsonRecords(t, out), all[len(all)-2:])

	// As a table: a header and n aligned rows.
	code, out, _ = runCLI(t, "audit", "tail", "--file", path, "-n", "2")
	rows := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(rows) != 3 || !strings.HasPrefix(rows[0], "TIME") ||
		!strings.Contains(rows[2], fmt.Sprintf(" %d ", all[len(all)-1].Seq)) || !strings.Contains(rows[2], "args="+all[len(all)-1].Args) {
		t.Fatalf("tail -n 2 table: %d\n%s", code, out)
	}

	if code, _, errs = runCLI(t, "audit", "tail", "--file", path, "-n", "-2"); code != 1 || !strings.Contains(errs, "-n -2") {
		t.Errorf("tail -n -2: %d %s", code, errs)
	}
}

// TestAuditTailFromSeq: --from-seq starts at the first record with seq >=
// N; with -f it then follows, picking up new appends.
func TestAuditTailFromSeq(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 20 {
		if err := l.Append(context.Background(), &audit.Record{Event: "login", User: fmt.Sprintf("u%d", i+1), Decision: audit.DecisionAllow}); err != nil {
			t.Fatal(err)
		}
	}
	users := func(recs []audit.Record) string {
		var s []string
		for _, r := range recs {
			s = append(s, r.User)
		}
		return strings.Join(s, " ")
	}
	// The seq of each user's record, as a string for --from-seq.
	seqOf := map[string]string{}
	code, out, _ := runCLI(t, "audit", "--file", path, "--json")
	for _, r := range jsonRecords(t, out) {
		seqOf[r.User] = strconv.FormatUint(r.Seq, 10)
	}
	if code != 0 || seqOf["u20"] == "" {
		t.Fatalf("audit --json: %d %v", code, seqOf)
	}

	// Without -f.
	code, out, errs := runCLI(t, "audit", "tail", "--file", path, "--from-seq", seqOf["u17"], "--json")
	if got := users(jsonRecords(t, out)); code != 0 || errs != "" || got != "u17 u18 u19 u20" {
		t.Fatalf("--from-seq u17's: %d %v %s", code, got, errs)
	}
	code, out, _ = runCLI(t, "audit", "tail", "--file", path, "--from-seq", seqOf["u5"], "--user", "u6", "--json")
	if got := users(jsonRecords(t, out)); code != 0 || got != "u6" {
		t.Fatalf("--from-seq u5's --user u6: %d %v", code, got)
	}
	code, out, _ = runCLI(t, "audit", "tail", "--file", path, "--from-seq", seqOf["u19"])
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "u19") || strings.Contains(out, "u18 ") {
		t.Fatalf("--from-seq u19's, table: %d\n%s", code, out)
	}
	next, _ := strconv.ParseUint(seqOf["u20"], 10, 64)
	next++

	// With -f: from u18's, and from the next seq (everything shipped so
	// far), then new appends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type follower struct {
		buf  beamtest.SyncBuffer
		errb beamtest.SyncBuffer
		done chan int
	}
	start := func(from string) *follower {
		f := &follower{done: make(chan int, 1)}
		go func() {
			f.done <- run(ctx, []string{"audit", "tail", "-f", "--from-seq", from, "--json", "--file", path}, &f.buf, &f.errb)
		}()
		return f
	}
	f18, f21 := start(seqOf["u18"]), start(strconv.FormatUint(next, 10))
	waitFor := func(f *follower, n int) []audit.Record {
		t.Helper()
		for {
			if recs := jsonRecords(t, completeLines(f.buf.String())); len(recs) >= n {
				return recs
			}
			select {
			case <-ctx.Done():
				t.Fatalf("follower printed %q, want %d records", f.buf.String(), n)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if got := users(waitFor(f18, 3)); got != "u18 u19 u20" {
		t.Fatalf("-f --from-seq u18's before appends: %v", got)
	}
	for i := 20; i < 22; i++ {
		if err := l.Append(context.Background(), &audit.Record{Event: "login", User: fmt.Sprintf("u%d", i+1), Decision: audit.DecisionAllow}); err != nil {
			t.Fatal(err)
		}
	}
	if got := users(waitFor(f18, 5)); got != "u18 u19 u20 u21 u22" {
		t.Errorf("-f --from-seq u18's: %v", got)
	}
	if got := users(waitFor(f21, 2)); got != "u21 u22" {
		t.Errorf("-f --from-seq next: %v", got)
	}
	cancel()
	for _, f := range []*follower{f18, f21} {
		select {
		case code := <-f.done:
			if code != 0 || f.errb.String() != "" {
				t.Errorf("tail -f exit %d, stderr %q", code, f.errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("tail -f did not stop when its context ended")
		}
	}
}

// TestAuditTailFromSeqGap: a file that starts after --from-seq (the
// records were rotated away) is reported on stderr.
func TestAuditTailFromSeqGap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLog(t, path, sampleRecords()...)
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	os.WriteFile(path, []byte(strings.Join(lines[2:], "")), 0o600) // from line 3
	rest := jsonRecords(t, strings.Join(lines[2:], ""))
	from := rest[0].Seq - 1
	code, out, errs := runCLI(t, "audit", "tail", "--file", path, "--from-seq", strconv.FormatUint(from, 10), "--json")
	if code != 0 || len(jsonRecords(t, out)) != len(rest) || !strings.Contains(errs, fmt.Sprintf("records %d to %d are not in", from, from)) {
		t.Errorf("--from-seq 2 of a file starting at 3: %d\n%s%s", code, out, errs)
	}
}

// completeLines drops a trailing partial line of s.
func completeLines(s string) string {
	return s[:strings.LastIndexByte(s, '\n')+1]
}

func TestAuditHelp(t *testing.T) {
	code, out, _ := runCLI(t, "audit", "help")
	for _, want := range []string{"tail [-f] [-n N] [--from-seq N]", "-n N", "--from-seq N", "no records match", "<0.50.0>", "ENGINEER"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("audit help: %d, no %q in\n%s", code, want, out)
		}
	}
}

// TestAuditTailFromSeqAcrossRotation: a shipper that stopped before a
// rotation resumes with --from-seq: the records still in the rotated file
// come first, then the active file's, each once.
func TestAuditTailFromSeqAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rot, ok := any(l).(interface{ Rotate() error })
	if !ok {
		t.Skip("this Log does not rotate")
	}
	add := func(users ...string) {
		for _, u := range users {
			if err := l.Append(context.Background(), &audit.Record{Event: "login", User: u, Decision: audit.DecisionAllow}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("a1", "a2", "a3")
	code, out, _ := runCLI(t, "audit", "tail", "--file", path, "--json", "-n", "1")
	shipped := jsonRecords(t, out) // the shipper stopped after a3
	if code != 0 || len(shipped) != 1 || shipped[0].User != "a3" {
		t.Fatalf("tail -n 1: %d %s", code, out)
	}
	add("a4")
	if err := rot.Rotate(); err != nil {
		t.Fatal(err)
	}
	add("b1")
	if err := rot.Rotate(); err != nil {
		t.Fatal(err)
	}
	add("c1", "c2")
	code, out, errs := runCLI(t, "audit", "tail", "--file", path, "--json", "--from-seq", strconv.FormatUint(shipped[0].Seq+1, 10))
	var got []string
	for _, r := range jsonRecords(t, out) {
		got = append(got, string(r.Event)+":"+r.User)
	}
	if code != 0 || errs != "" || strings.Join(got, " ") != "login:a4 rotate: login:b1 rotate: login:c1 login:c2" {
		t.Errorf("--from-seq after a3: %d %v %s", code, got, errs)
	}
}

// TestAuditReplay: replay prints a shell's transcript in order, only that
// session's, with offsets; --follow prints a live shell's records as they
// come and returns when it closes.
func TestAuditReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	add := func(ev audit.Event, session, args, reason string) {
		t.Helper()
		r := &audit.Record{Event: ev, Session: session, User: "alice", Target: "prismatic@prod-01", Decision: audit.DecisionInfo,
			Args: args, Reason: reason, Detail: map[string]string{"request": "sh-1", "expressions": "1"}}
		if err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	add(audit.EventShellOpen, "s1", "", "queue stuck")
	add(audit.EventShellInput, "other", "not-this-one.", "")
	add(audit.EventShellInput, "s1", "X = 41.\n", "")
	add(audit.EventShellOutput, "s1", "41\n\x1b[31mred\n", "")
	var out, errb bytes.Buffer
	done := make(chan error, 1)
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() { done <- auditReplay(fctx, []string{"s1", "--follow", "--file", path}, &out, &errb) }()
	time.Sleep(500 * time.Millisecond)
	add(audit.EventShellClose, "s1", "", "you left")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("replay --follow did not return at the shell's close")
	}
	got := out.String()
	for _, want := range []string{"open  alice on prismatic@prod-01, grant sh-1", ">     X = 41.", "<     41", "?[31mred", "close you left (1 expressions)"} {
		if !strings.Contains(got, want) {
			t.Errorf("replay lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "not-this-one") || strings.Contains(got, "\x1b") {
		t.Errorf("replay shows another session or a terminal escape:\n%s", got)
	}
	out.Reset()
	if err := auditReplay(ctx, []string{"nosuch", "--file", path}, &out, &errb); err != nil || !strings.Contains(errb.String(), "no break-glass shell records for session nosuch") {
		t.Errorf("an unknown session: %v %q", err, errb.String())
	}
}
