package audit

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// setBuilder writes a rotated set the way the writer does, chaining every
// record, so the verifier's checks can be attacked one at a time.
type setBuilder struct {
	t     *testing.T
	dir   string
	key   *Ed25519Key
	logID string
	seq   uint64
	prev  string
	files []string
	cur   []byte
	anch  *Checkpoint
}

func newSetBuilder(t *testing.T, logID string) *setBuilder {
	t.Helper()
	dir := t.TempDir()
	key, err := LoadOrCreateEd25519Key(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	b := &setBuilder{t: t, dir: dir, key: key, logID: logID, prev: GenesisHash}
	b.add(&Record{Event: EventLogStart, Decision: DecisionInfo, Detail: map[string]string{"log_id": logID}})
	return b
}

func (b *setBuilder) add(r *Record) *Record {
	b.t.Helper()
	r.Time = time.Date(2026, 12, 1, 0, 0, 0, int(b.seq), time.UTC)
	r.Seq, r.Prev = b.seq+1, b.prev
	var err error
	var h string
	b.cur, h, err = appendLine(b.cur, r)
	if err != nil {
		b.t.Fatal(err)
	}
	r.Hash = h
	b.seq, b.prev = r.Seq, h
	return r
}

func (b *setBuilder) messages(n int) {
	for i := range n {
		b.add(&Record{Event: EventMessage, User: "alice", Decision: DecisionAllow, MFA: "erlang:memory/0", Args: strconv.Itoa(i)})
	}
}

// checkpoint signs the head and writes the checkpoint record; anchor also
// keeps it as the anchored checkpoint.
func (b *setBuilder) checkpoint(anchor bool) Checkpoint {
	b.t.Helper()
	cp := Checkpoint{LogID: b.logID, Replica: "bastion-1", Seq: b.seq, Head: b.prev, At: time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC), KeyID: b.key.KeyID()}
	sig, err := b.key.Sign(context.Background(), cp.SignedBytes())
	if err != nil {
		b.t.Fatal(err)
	}
	cp.Sig = sig
	b.add(&Record{Event: EventCheckpoint, Decision: DecisionInfo, Detail: cp.detail()})
	if anchor {
		b.anch = &cp
	}
	return cp
}

// rotate ends the current file and starts the next with a rotate record.
func (b *setBuilder) rotate() {
	b.t.Helper()
	name := "audit.jsonl." + strconv.Itoa(len(b.files)+1000)
	if err := os.WriteFile(filepath.Join(b.dir, name), b.cur, 0o600); err != nil {
		b.t.Fatal(err)
	}
	b.files = append(b.files, name)
	b.cur = nil
	b.add(&Record{Event: EventRotate, Decision: DecisionInfo, Detail: map[string]string{
		"prev_file": name, "prev_seq": strconv.FormatUint(b.seq, 10), "prev_hash": b.prev, "log_id": b.logID}})
}

// finish writes the active file and returns every path, oldest first.
func (b *setBuilder) finish() []string {
	b.t.Helper()
	if err := os.WriteFile(filepath.Join(b.dir, "audit.jsonl"), b.cur, 0o600); err != nil {
		b.t.Fatal(err)
	}
	var out []string
	for _, f := range append(append([]string(nil), b.files...), "audit.jsonl") {
		out = append(out, filepath.Join(b.dir, f))
	}
	return out
}

func verifyOK(t *testing.T, files []string, opts VerifyOptions) *SetReport {
	t.Helper()
	rep, err := VerifySet(files, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("clean set fails: %v", rep.Problems)
	}
	return rep
}

// cleanSet is three files with checkpoints, the newest anchored.
func cleanSet(t *testing.T) (*setBuilder, []string) {
	b := newSetBuilder(t, "log-a")
	b.messages(10)
	b.checkpoint(false)
	b.rotate()
	b.messages(10)
	b.checkpoint(false)
	b.rotate()
	b.messages(10)
	b.checkpoint(true)
	b.messages(3) // after the newest checkpoint
	return b, b.finish()
}

func TestVerifySetClean(t *testing.T) {
	b, files := cleanSet(t)
	rep := verifyOK(t, files, VerifyOptions{Keys: b.key.Public(), Anchored: b.anch})
	if rep.Records != int(b.seq) || rep.FirstSeq != 1 || rep.LastSeq != b.seq || rep.LogID != "log-a" || len(rep.Files) != 3 {
		t.Errorf("report %+v", rep)
	}
	// The newest checkpoint covers the record before its own: its record
	// and the 3 after it are uncovered.
	if rep.Checkpoints != 3 || rep.Uncovered() != 4 {
		t.Errorf("checkpoints %d, uncovered %d; want 3 and 4", rep.Checkpoints, rep.Uncovered())
	}
}

// wantProblem verifies and expects exactly one kind among the problems.
func wantProblem(t *testing.T, files []string, opts VerifyOptions, kind ProblemKind, text string) {
	t.Helper()
	rep, err := VerifySet(files, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatalf("verify passed, want a %s problem", kind)
	}
	for _, p := range rep.Problems {
		if p.Kind == kind && strings.Contains(p.String(), text) {
			return
		}
	}
	t.Errorf("want a %s problem mentioning %q, got %v", kind, text, rep.Problems)
}

func TestVerifySetAttacks(t *testing.T) {
	t.Run("tail truncation behind the anchored checkpoint", func(t *testing.T) {
		b, files := cleanSet(t)
		active := files[len(files)-1]
		data, _ := os.ReadFile(active)
		lines := strings.SplitAfter(string(data), "\n")
		// Drop the 3 uncovered records and the checkpoint record, and the
		// record the checkpoint covers.
		os.WriteFile(active, []byte(strings.Join(lines[:len(lines)-1-5], "")), 0o600)
		wantProblem(t, files, VerifyOptions{Keys: b.key.Public(), Anchored: b.anch}, ProblemTruncated, "records were cut from its end")
	})
	t.Run("truncation after the newest checkpoint is not detectable, and said so", func(t *testing.T) {
		b, files := cleanSet(t)
		active := files[len(files)-1]
		data, _ := os.ReadFile(active)
		lines := strings.SplitAfter(string(data), "\n")
		os.WriteFile(active, []byte(strings.Join(lines[:len(lines)-1-3], "")), 0o600)
		rep := verifyOK(t, files, VerifyOptions{Keys: b.key.Public(), Anchored: b.anch})
		if rep.Uncovered() != 1 { // the checkpoint record itself
			t.Errorf("uncovered = %d", rep.Uncovered())
		}
	})
	t.Run("an empty log", func(t *testing.T) {
		b, _ := cleanSet(t)
		empty := filepath.Join(t.TempDir(), "audit.jsonl")
		os.WriteFile(empty, nil, 0o600)
		wantProblem(t, []string{empty}, VerifyOptions{Keys: b.key.Public(), Anchored: b.anch}, ProblemEmpty, "emptied or replaced")
	})
	t.Run("a log of another gateway with a valid chain and its own key", func(t *testing.T) {
		ours, _ := cleanSet(t)
		b := newSetBuilder(t, "log-b") // another log id and another key
		b.messages(50)
		b.checkpoint(false)
		files := b.finish()
		wantProblem(t, files, VerifyOptions{Keys: ours.key.Public(), Anchored: ours.anch}, ProblemForeign, "another gateway")
		wantProblem(t, files, VerifyOptions{Keys: ours.key.Public(), Anchored: ours.anch}, ProblemForeign, "is not the verification key")
	})
	t.Run("an edited record", func(t *testing.T) {
		b, files := cleanSet(t)
		data, _ := os.ReadFile(files[1])
		os.WriteFile(files[1], []byte(strings.Replace(string(data), `"user":"alice"`, `"user":"mallory"`, 1)), 0o600)
		wantProblem(t, files, VerifyOptions{Keys: b.key.Public(), Anchored: b.anch}, ProblemChain, "hash mismatch")
	})
	t.Run("a deleted record", func(t *testing.T) {
		b, files := cleanSet(t)
		data, _ := os.ReadFile(files[0])
		lines := strings.SplitAfter(string(data), "\n")
		os.WriteFile(files[0], []byte(strings.Join(append(lines[:4:4], lines[5:]...), "")), 0o600)
		wantProblem(t, files, VerifyOptions{Keys: b.key.Public(), Anchored: b.anch}, ProblemChain, "was deleted")
	})
	t.Run("a deleted middle file", func(t *testing.T) {
		b, files := cleanSet(t)
		files = []string{files[0], files[2]}
		wantProblem(t, files, VerifyOptions{Keys: b.key.Public(), Anchored: b.anch}, ProblemMissingFile, "missing between")
	})
	t.Run("a deleted first file without a retention record", func(t *testing.T) {
		b, files := cleanSet(t)
		wantProblem(t, files[1:], VerifyOptions{Keys: b.key.Public(), Anchored: b.anch}, ProblemMissingFile, "no retention record")
	})
	t.Run("a forged checkpoint in a re-chained log", func(t *testing.T) {
		// Someone without the key writes a checkpoint claiming our key and
		// keeps the chain valid: the signature does not verify.
		b := newSetBuilder(t, "log-a")
		b.messages(5)
		forger, err := LoadOrCreateEd25519Key(filepath.Join(t.TempDir(), "forger"))
		if err != nil {
			t.Fatal(err)
		}
		cp := Checkpoint{LogID: "log-a", Replica: "bastion-1", Seq: b.seq, Head: b.prev, At: time.Now().UTC(), KeyID: b.key.KeyID()}
		cp.Sig, _ = forger.Sign(context.Background(), cp.SignedBytes())
		b.add(&Record{Event: EventCheckpoint, Decision: DecisionInfo, Detail: cp.detail()})
		wantProblem(t, b.finish(), VerifyOptions{Keys: b.key.Public()}, ProblemCheckpoint, "does not verify")
	})
	t.Run("a checkpoint that does not match its record", func(t *testing.T) {
		b := newSetBuilder(t, "log-a")
		b.messages(5)
		cp := Checkpoint{LogID: "log-a", Replica: "bastion-1", Seq: 3, Head: b.prev, At: time.Now().UTC(), KeyID: b.key.KeyID()}
		cp.Sig, _ = b.key.Sign(context.Background(), cp.SignedBytes())
		b.add(&Record{Event: EventCheckpoint, Decision: DecisionInfo, Detail: cp.detail()})
		wantProblem(t, b.finish(), VerifyOptions{Keys: b.key.Public()}, ProblemCheckpoint, "the record hashes to")
	})
	t.Run("a checkpoint signed by a known key but over other bytes", func(t *testing.T) {
		b := newSetBuilder(t, "log-a")
		b.messages(5)
		cp := b.checkpoint(true)
		bad := cp
		bad.Seq = 3
		bad.Head = b.anch.Head
		b.anch = &bad // an anchor whose signature no longer matches
		files := b.finish()
		wantProblem(t, files, VerifyOptions{Keys: b.key.Public(), Anchored: b.anch}, ProblemCheckpoint, "does not verify")
	})
}

func TestVerifySetRetention(t *testing.T) {
	b := newSetBuilder(t, "log-a")
	b.messages(5)
	b.rotate()
	first := b.files[0]
	b.messages(5)
	b.add(&Record{Event: EventRetention, Decision: DecisionInfo, Detail: map[string]string{
		"deleted": first, "last_seq": "6", "last_hash": "x"}})
	files := b.finish()
	os.Remove(files[0])
	rep := verifyOK(t, files[1:], VerifyOptions{})
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "deleted by retention") {
		t.Errorf("notes %q", rep.Notes)
	}
}

func TestCheckpointerWritesAndAnchors(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(filepath.Join(dir, "audit.jsonl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "anchor", "key")
	key, err := LoadOrCreateEd25519Key(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	anchor := FileAnchor{Dir: filepath.Dir(keyPath)}
	c, err := NewCheckpointer(CheckpointerConfig{Log: l, Signer: key, Anchor: anchor, Replica: "r1", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 5 {
		if err := l.Append(ctx, &Record{Event: EventMessage}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Checkpoint(ctx); err != nil || c.Made() != 1 {
		t.Fatalf("a second checkpoint with nothing new: %v, made %d", err, c.Made())
	}
	l.Append(ctx, &Record{Event: EventMessage})
	if err := c.Close(); err != nil || c.Made() != 2 {
		t.Fatalf("Close: %v, made %d", err, c.Made())
	}
	l.Close()
	got, err := anchor.Latest(ctx, "r1")
	if err != nil || got == nil {
		t.Fatalf("anchor: %v %v", got, err)
	}
	pub, err := LoadPublicKey(keyPath + ".pub") // offline verification
	if err != nil {
		t.Fatal(err)
	}
	files, err := Segments(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rep := verifyOK(t, files, VerifyOptions{Keys: pub, Anchored: got})
	// Two checkpoint records (the anchor is the second); only the last
	// checkpoint record itself comes after the newest checkpoint.
	if rep.Checkpoints != 2 || rep.Uncovered() != 1 {
		t.Errorf("checkpoints %d, uncovered %d", rep.Checkpoints, rep.Uncovered())
	}
	// The same key reloads; a key readable by others is refused.
	if k2, err := LoadOrCreateEd25519Key(keyPath); err != nil || k2.KeyID() != key.KeyID() {
		t.Errorf("reload: %v %v", k2, err)
	}
	os.Chmod(keyPath, 0o644)
	if _, err := LoadOrCreateEd25519Key(keyPath); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("exposed key: %v", err)
	}
}
