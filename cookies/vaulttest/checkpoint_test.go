package vaulttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/audit/vaultanchor"
	"beamgate/cookies"
)

// checkpointedLog writes a log through the real writer with checkpoints
// signed by Vault Transit and anchored in Vault KV, as the gateway does.
func checkpointedLog(t *testing.T, vs *cookies.VaultStore, replica string, records int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := vaultanchor.Config{KVMount: "secret"}
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Log: l, Signer: vaultanchor.NewTransit(vs.Client(), cfg),
		Anchor: vaultanchor.NewKV(vs.Client(), cfg), Replica: replica, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for i := range records {
		if err := l.Append(ctx, &audit.Record{Event: audit.EventMessage, User: "alice", Decision: audit.DecisionAllow, MFA: "erlang:memory/0"}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := cp.Checkpoint(ctx); err != nil {
				t.Fatalf("checkpoint with the gateway's policy: %v", err)
			}
		}
	}
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAuditCheckpointsInVault: the gateway's Vault policy signs with the
// Transit key and stores checkpoints in KV but cannot read, export or
// delete the key; a reviewer's policy reads the public key and the
// checkpoints and verifies. Each attack on the log fails verification
// with its own kind of problem.
func TestAuditCheckpointsInVault(t *testing.T) {
	tv := startVault(t)
	gw := openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
		Auth: tv.appRole(t, "gw", "beamgate-reader", time.Hour, 2*time.Hour)})
	reviewer := openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
		Auth: tv.appRole(t, "rev", "beamgate-auditor", time.Hour, 2*time.Hour)})
	ctx := ctxT(t)
	cfg := vaultanchor.Config{KVMount: "secret"}

	// The gateway can sign only.
	if _, err := vaultanchor.FetchKeys(ctx, gw.Client(), cfg); err == nil {
		t.Error("the gateway's policy reads the transit key")
	}
	if _, err := gw.Client().Logical().ReadWithContext(ctx, "transit/export/signing-key/beamgate-audit"); err == nil {
		t.Error("the gateway's policy exports the transit key")
	}
	if _, err := gw.Client().Logical().DeleteWithContext(ctx, "transit/keys/beamgate-audit"); err == nil {
		t.Error("the gateway's policy deletes the transit key")
	}
	if _, err := vaultanchor.NewTransit(reviewer.Client(), cfg).Sign(ctx, []byte("x")); err == nil {
		t.Error("the reviewer's policy signs")
	}

	path := checkpointedLog(t, gw, "bastion-1", 35)
	keys, err := vaultanchor.FetchKeys(ctx, reviewer.Client(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	anchored, err := vaultanchor.NewKV(reviewer.Client(), cfg).Latest(ctx, "bastion-1")
	if err != nil || anchored == nil {
		t.Fatalf("anchored checkpoint: %v %v", anchored, err)
	}
	verify := func(files ...string) *audit.SetReport {
		t.Helper()
		rep, err := audit.VerifySet(files, audit.VerifyOptions{Keys: keys, Anchored: anchored})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := verify(path)
	if !rep.OK() || rep.Checkpoints != 4 || rep.Uncovered() != 1 {
		t.Fatalf("clean log: ok=%v checkpoints=%d uncovered=%d problems %v", rep.OK(), rep.Checkpoints, rep.Uncovered(), rep.Problems)
	}

	want := func(rep *audit.SetReport, kind audit.ProblemKind) {
		t.Helper()
		for _, p := range rep.Problems {
			if p.Kind == kind {
				return
			}
		}
		t.Errorf("want a %s problem, got %v", kind, rep.Problems)
	}
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	write := func(content string) string {
		p := filepath.Join(t.TempDir(), "audit.jsonl")
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	t.Run("tail truncation", func(t *testing.T) {
		want(verify(write(strings.Join(lines[:len(lines)-6], ""))), audit.ProblemTruncated)
	})
	t.Run("empty file", func(t *testing.T) {
		want(verify(write("")), audit.ProblemEmpty)
	})
	t.Run("a valid log of another gateway instance, signed by the same Vault", func(t *testing.T) {
		other := checkpointedLog(t, gw, "bastion-2", 50)
		want(verify(other), audit.ProblemForeign)
	})
	t.Run("edited record", func(t *testing.T) {
		want(verify(write(strings.Replace(string(data), `"user":"alice"`, `"user":"bob"`, 1))), audit.ProblemChain)
	})
	t.Run("forged checkpoint", func(t *testing.T) {
		forged := *anchored
		forged.Seq = anchored.Seq + 100 // claims a longer log, same signature
		rep, err := audit.VerifySet([]string{path}, audit.VerifyOptions{Keys: keys, Anchored: &forged})
		if err != nil {
			t.Fatal(err)
		}
		want(rep, audit.ProblemCheckpoint)
	})
}
