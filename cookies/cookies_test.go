package cookies

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGatewayCookie(t *testing.T) {
	g := Gateway{Secret: []byte("0123456789abcdef0123456789abcdef"), Window: time.Hour}
	t0 := time.Unix(1_700_000_000, 0).Truncate(time.Hour)
	c := g.Cookie("alice", t0)
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(c) {
		t.Fatalf("cookie %q is not 32 atom-safe characters", c)
	}
	if got := g.Cookie("alice", t0.Add(59*time.Minute)); got != c {
		t.Errorf("cookie changed within its window")
	}
	next := g.Cookie("alice", t0.Add(time.Hour))
	if next == c {
		t.Errorf("cookie did not change across windows")
	}
	if g.Cookie("bob", t0) == c {
		t.Errorf("two users share a cookie")
	}
	// Length prefix: ("ab", idx) and ("a", ...) never collide by construction;
	// check a different secret changes the cookie.
	if (Gateway{Secret: []byte("fedcba9876543210fedcba9876543210"), Window: time.Hour}).Cookie("alice", t0) == c {
		t.Errorf("cookie does not depend on the secret")
	}
	acc := g.Accepted("alice", t0.Add(time.Hour+time.Minute))
	if len(acc) != 2 || acc[0] != next || acc[1] != c {
		t.Errorf("Accepted = %v, want [%s %s]", acc, next, c)
	}
	for _, a := range g.Accepted("alice", t0.Add(2*time.Hour)) {
		if a == c {
			t.Errorf("cookie still accepted two windows later")
		}
	}
	if exp := g.Expires(t0); !exp.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("Expires = %v, want %v", exp, t0.Add(2*time.Hour))
	}
	if err := (Gateway{Secret: []byte("short")}).Validate(); err == nil {
		t.Errorf("short secret validated")
	}
	// A zero window falls back to the default instead of dividing by zero.
	if (Gateway{Secret: g.Secret}).Cookie("alice", t0) == "" {
		t.Errorf("empty cookie with default window")
	}
}

func TestFileStorePermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cookies.yaml")
	if err := os.WriteFile(path, []byte("prismatic: SECRETCOOKIE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	_, err := NewFileStore(path)
	var pe *PermissionError
	if !errors.As(err, &pe) {
		t.Fatalf("NewFileStore on 0644 file: err = %v, want PermissionError", err)
	}
	if !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("error %q does not name the fix", err)
	}
	if strings.Contains(err.Error(), "SECRETCOOKIE") {
		t.Errorf("error leaks the cookie")
	}
	os.Chmod(path, 0o640)
	if _, err := NewFileStore(path); !errors.As(err, &pe) {
		t.Errorf("group-readable file accepted: %v", err)
	}
	os.Chmod(path, 0o600)
	s, err := NewFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if c, err := s.ProductionCookie(ctx, "prismatic", false); err != nil || c != "SECRETCOOKIE" {
		t.Fatalf("ProductionCookie = %q, %v", c, err)
	}
	if _, err := s.ProductionCookie(ctx, "other", false); !errors.Is(err, ErrNoCookie) {
		t.Errorf("unknown cluster: err = %v", err)
	}
	// Rotation: cached until fresh.
	if err := WriteFile(path, map[string]string{"prismatic": "ROTATED"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.ProductionCookie(ctx, "prismatic", false); c != "SECRETCOOKIE" {
		t.Errorf("cached cookie = %q", c)
	}
	if c, _ := s.ProductionCookie(ctx, "prismatic", true); c != "ROTATED" {
		t.Errorf("fresh cookie = %q", c)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("WriteFile mode %v", fi.Mode())
	}
}

func TestFileStoreMalformed(t *testing.T) {
	dir := t.TempDir()
	for _, body := range []string{"- a\n- b\n", "a: [x]\n", "a: x\na: y\n", "a: \"\"\n", "{{{SECRETCOOKIE"} {
		path := filepath.Join(dir, "c.yaml")
		os.WriteFile(path, []byte(body), 0o600)
		_, err := NewFileStore(path)
		if err == nil {
			t.Errorf("%q accepted", body)
			continue
		}
		if strings.Contains(err.Error(), "SECRETCOOKIE") {
			t.Errorf("error %q leaks file content", err)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	a, err := LoadOrCreateSecret(path)
	if err != nil || len(a) != SecretSize {
		t.Fatalf("create: %d bytes, %v", len(a), err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	b, err := LoadOrCreateSecret(path)
	if err != nil || string(a) != string(b) {
		t.Fatalf("reload differs: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateSecret(path); err == nil {
		t.Errorf("world-readable secret accepted")
	}
}

// TestGatewayKeyringRotation: after a rotation cookies come from the new
// secret, and the previous secret's cookies stay accepted until
// PreviousUntil, not after.
func TestGatewayKeyringRotation(t *testing.T) {
	old, fresh := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	ring := NewKeyring(&Secrets{Current: old, Version: 1})
	g := Gateway{Keys: ring, Window: time.Hour}
	now := time.Date(2026, 12, 2, 10, 30, 0, 0, time.UTC)
	before := g.Cookie("alice", now)
	if want := (Gateway{Secret: old, Window: time.Hour}).Cookie("alice", now); before != want {
		t.Fatalf("keyring cookie %s, file-secret cookie %s: want the same derivation", before, want)
	}
	ring.Store(&Secrets{Current: fresh, Previous: old, PreviousUntil: now.Add(time.Hour), Version: 2})
	after := g.Cookie("alice", now)
	if after == before {
		t.Fatal("the cookie did not change with the secret")
	}
	if !slices.Contains(g.Accepted("alice", now), before) || !slices.Contains(g.Accepted("alice", now), after) {
		t.Errorf("within the window both cookies must be accepted: %v", g.Accepted("alice", now))
	}
	if slices.Contains(g.Accepted("alice", now.Add(time.Hour)), before) {
		t.Error("the previous secret's cookie is still accepted after PreviousUntil")
	}
	if slices.Contains(g.Accepted("bob", now), before) {
		t.Error("alice's cookie accepted for bob")
	}
	if err := (Gateway{Keys: NewKeyring(nil)}).Validate(); err == nil {
		t.Error("an empty keyring validated")
	}
}

func TestGatewaySecretData(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, n)) }
	for _, tc := range []struct {
		name string
		d    gatewaySecretData
		ok   bool
	}{
		{"current only", gatewaySecretData{Current: b64(32)}, true},
		{"rotated", gatewaySecretData{Current: b64(32), Previous: b64(32), PreviousUntil: "2026-12-02T10:00:00Z"}, true},
		{"short", gatewaySecretData{Current: b64(8)}, false},
		{"long", gatewaySecretData{Current: b64(4096)}, false},
		{"not base64", gatewaySecretData{Current: "!!!!"}, false},
		{"previous without until", gatewaySecretData{Current: b64(32), Previous: b64(32)}, false},
		{"empty", gatewaySecretData{}, false},
	} {
		_, err := tc.d.secrets(1)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), tc.d.Current) && tc.d.Current != "" {
			t.Errorf("%s: the error %q repeats the secret", tc.name, err)
		}
	}
}

// TestFileDoc: the file DocStore refuses a stale version and keeps mode
// 0600.
func TestFileDoc(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bg.json")
	d := FileDoc(path)
	if doc, v, err := d.Load(ctx); err != nil || v != 0 || len(doc) != 0 {
		t.Fatalf("empty: %q %d %v", doc, v, err)
	}
	if err := d.Store(ctx, []byte(`{"a":1}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Store(ctx, []byte(`{"a":2}`), 0); !errors.Is(err, ErrDocConflict) {
		t.Errorf("a stale version: %v", err)
	}
	doc, v, err := d.Load(ctx)
	if err != nil || v != 1 || string(doc) != `{"a":1}` {
		t.Errorf("Load = %q %d %v", doc, v, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: %v %v", fi, err)
	}
}
