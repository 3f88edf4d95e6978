package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQueryFilter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	recs := []*Record{
		{Time: base, Event: "login", User: "alice", Decision: DecisionInfo},
		{Time: base.Add(1 * time.Minute), Event: "message", User: "alice", Session: "s1", Engineer: "dbg@a", Target: "app@p1", Cluster: "eu", Decision: DecisionAllow},
		{Time: base.Add(2 * time.Minute), Event: "message", User: "bob", Session: "s2", Engineer: "dbg@b", Target: "app@p2", Cluster: "us", Decision: DecisionDeny},
		{Time: base.Add(3 * time.Minute), Event: "message", User: "bob", Session: "s2", Engineer: "app@p1", Target: "dbg@b", Cluster: "eu", Decision: DecisionAllowWrite, Write: true},
	}
	for _, r := range recs {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	data, _ := os.ReadFile(path)

	tests := []struct {
		name string
		f    Filter
		want []uint64
	}{
		// seq 1 is the new log's log_start record (stamped before base).
		{"all", Filter{}, []uint64{1, 2, 3, 4, 5}},
		{"user", Filter{User: "bob"}, []uint64{4, 5}},
		{"node as engineer or target", Filter{Node: "app@p1"}, []uint64{3, 5}},
		{"cluster", Filter{Cluster: "eu"}, []uint64{3, 5}},
		{"decision", Filter{Decision: DecisionDeny}, []uint64{4}},
		{"session", Filter{Session: "s2"}, []uint64{4, 5}},
		{"event", Filter{Event: "login"}, []uint64{2}},
		{"since inclusive", Filter{Since: base.Add(2 * time.Minute)}, []uint64{4, 5}},
		{"until exclusive", Filter{Until: base.Add(2 * time.Minute)}, []uint64{1, 2, 3}},
		{"combined", Filter{User: "bob", Cluster: "eu", Since: base}, []uint64{5}},
		{"no match", Filter{User: "carol"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			err := Query(bytes.NewReader(data), tt.f, func(r Record) error { got = append(got, r.Seq); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if !equalSeqs(got, tt.want) {
				t.Fatalf("Query(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestQueryErrors(t *testing.T) {
	good := goodLog(t, 2)
	errStop := errors.New("stop")
	calls := 0
	if err := Query(bytes.NewReader(good), Filter{}, func(Record) error { calls++; return errStop }); !errors.Is(err, errStop) || calls != 1 {
		t.Fatalf("Query with failing fn = %v after %d calls; want errStop after 1", err, calls)
	}

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"malformed", append(append([]byte{}, good...), "{not json\n"...), "line 3: invalid JSON"},
		{"torn", good[:len(good)-5], "line 2: incomplete"},
		{"too long", append(append([]byte{}, good...), bytes.Repeat([]byte("z"), MaxLineLen+1)...), "line 3 is longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Query(bytes.NewReader(tt.data), Filter{}, func(Record) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Query = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestTailNoFollow(t *testing.T) {
	path, _ := writeLog(t, 4)
	var got []uint64
	if err := Tail(context.Background(), path, false, func(r Record) error { got = append(got, r.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if !equalSeqs(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("Tail = %v", got)
	}
}

// tailFollow starts Tail -f on path and returns the channel of records it
// sees. The Tail goroutine ends when the test does.
func tailFollow(t *testing.T, path string) <-chan Record {
	t.Helper()
	old := TailPollInterval
	TailPollInterval = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Record, 100)
	done := make(chan error, 1)
	go func() {
		done <- Tail(ctx, path, true, func(r Record) error { out <- r; return nil })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Tail returned %v, want context.Canceled", err)
		}
		TailPollInterval = old
	})
	return out
}

func expectSeqs(t *testing.T, ch <-chan Record, seqs ...uint64) {
	t.Helper()
	for _, want := range seqs {
		select {
		case r := <-ch:
			if r.Seq != want {
				t.Fatalf("Tail delivered seq %d, want %d", r.Seq, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Tail did not deliver seq %d", want)
		}
	}
}

func TestTailFollow(t *testing.T) {
	path, _ := writeLog(t, 2)
	ch := tailFollow(t, path)
	expectSeqs(t, ch, 1, 2)

	l := openTest(t, path) // a log without a log id: Open appends log_start (3)
	appendN(t, l, 2)
	expectSeqs(t, ch, 3, 4, 5)
	l.Close()

	// A line written in two halves is delivered once complete.
	r := sampleRecord(0)
	r.Seq, r.Prev = 6, strings.Repeat("0", 64)
	line, _, err := appendLine(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(line[:len(line)/2])
	select {
	case r := <-ch:
		t.Fatalf("Tail delivered a half-written line: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	f.Write(line[len(line)/2:])
	expectSeqs(t, ch, 6)
}

func TestTailFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openTest(t, path) // log_start is seq 1
	appendN(t, l, 1)
	ch := tailFollow(t, path)
	expectSeqs(t, ch, 1, 2)
	appendN(t, l, 1)
	expectSeqs(t, ch, 3)
	l.Close()

	// Not a rotated name (Segments would not list it): l2 starts a new log.
	if err := os.Rename(path, filepath.Join(dir, "audit.log.1")); err != nil {
		t.Fatal(err)
	}
	l2 := openTest(t, path)
	appendN(t, l2, 2)
	expectSeqs(t, ch, 1, 2, 3)
}
