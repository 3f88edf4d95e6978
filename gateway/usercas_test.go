package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"beamgate/gateway/config"

	"go.uber.org/zap"
	gossh "golang.org/x/crypto/ssh"
)

func caLine(t *testing.T) (string, gossh.PublicKey) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k))), k
}

// TestVaultCAsRotation: after Vault's CA key changes, the new key is
// trusted at once and the old one until max_cert_validity has passed; a
// failed read or a garbage answer keeps the keys held.
func TestVaultCAsRotation(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	oldLine, oldKey := caLine(t)
	newLine, newKey := caLine(t)
	answer, fail := oldLine, error(nil)
	v := newVaultCAs(func(context.Context, string) (string, error) { return answer, fail }, func() time.Time { return now }, zap.NewNop())
	ca := &config.UserCA{Name: "vault", VaultMount: "ssh", MaxCertValidity: 12 * time.Hour}
	has := func(k gossh.PublicKey) bool {
		for _, h := range v.Keys(ca) {
			if string(h.Marshal()) == string(k.Marshal()) {
				return true
			}
		}
		return false
	}
	if err := v.refresh(context.Background(), ca); err != nil || !has(oldKey) {
		t.Fatalf("first read: %v", err)
	}
	answer = newLine
	v.refresh(context.Background(), ca)
	if !has(newKey) || !has(oldKey) {
		t.Fatal("right after the rotation both keys must be trusted")
	}
	now = now.Add(13 * time.Hour)
	v.refresh(context.Background(), ca)
	if !has(newKey) || has(oldKey) {
		t.Error("the old key is still trusted past max_cert_validity")
	}
	fail = errors.New("connection refused")
	if err := v.refresh(context.Background(), ca); err == nil || !has(newKey) {
		t.Errorf("a failed read: %v, and the held key must stay", err)
	}
	answer, fail = "not a key", nil
	if err := v.refresh(context.Background(), ca); err == nil || !has(newKey) {
		t.Errorf("a garbage answer: %v, and the held key must stay", err)
	}
}
