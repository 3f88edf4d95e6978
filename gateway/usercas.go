package gateway

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"beamgate/gateway/config"

	"go.uber.org/zap"
	gossh "golang.org/x/crypto/ssh"
)

// FetchSSHCA reads the public key of a Vault SSH secrets engine's CA at
// mount (cookies.VaultStore.SSHCAPublicKey): an OpenSSH public key line.
type FetchSSHCA func(ctx context.Context, mount string) (string, error)

// vaultCAs holds the keys the user_cas entries with vault_mount trust: the
// key Vault holds now and, after a CA rotation, each earlier one until the
// certificates it signed can no longer be valid (the CA's
// max_cert_validity after it was replaced).
type vaultCAs struct {
	fetch FetchSSHCA
	now   func() time.Time
	log   *zap.Logger

	mu   sync.Mutex
	keys map[string][]heldKey // by mount
}

type heldKey struct {
	key   gossh.PublicKey
	until time.Time // zero: current
}

func newVaultCAs(fetch FetchSSHCA, now func() time.Time, log *zap.Logger) *vaultCAs {
	return &vaultCAs{fetch: fetch, now: now, log: log, keys: map[string][]heldKey{}}
}

// Keys returns the keys ca trusts now.
func (v *vaultCAs) Keys(ca *config.UserCA) []gossh.PublicKey {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	var out []gossh.PublicKey
	for _, k := range v.keys[ca.VaultMount] {
		if k.until.IsZero() || now.Before(k.until) {
			out = append(out, k.key)
		}
	}
	return out
}

// refresh reads ca's key from Vault. A changed key becomes current; the
// one it replaces is kept for ca.MaxCertValidity. A failed read keeps
// the keys held.
func (v *vaultCAs) refresh(ctx context.Context, ca *config.UserCA) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	text, err := v.fetch(rctx, ca.VaultMount)
	var key gossh.PublicKey
	if err == nil {
		key, _, _, _, err = gossh.ParseAuthorizedKey([]byte(text))
		if err == nil {
			if _, isCert := key.(*gossh.Certificate); isCert {
				err = fmt.Errorf("vault returned a certificate, not a CA key")
			}
		} else {
			err = fmt.Errorf("vault returned no OpenSSH public key")
		}
	}
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	held := v.keys[ca.VaultMount]
	now := v.now()
	var kept []heldKey
	seen := false
	for _, k := range held {
		switch {
		case bytes.Equal(k.key.Marshal(), key.Marshal()):
			seen = true
			kept = append(kept, heldKey{key: key})
		case k.until.IsZero():
			v.log.Info("the Vault SSH CA key changed; the previous one is trusted until certificates it signed expire",
				zap.String("ca", ca.Name), zap.String("previous", gossh.FingerprintSHA256(k.key)), zap.Duration("for", ca.MaxCertValidity))
			kept = append(kept, heldKey{key: k.key, until: now.Add(ca.MaxCertValidity)})
		case now.Before(k.until):
			kept = append(kept, k)
		}
	}
	if !seen {
		kept = append(kept, heldKey{key: key})
	}
	v.keys[ca.VaultMount] = kept
	return nil
}

// watch refreshes every Vault CA of cfg every its vault_refresh until ctx
// ends. cfg is re-read each round, so a reload's CAs are watched too.
func (v *vaultCAs) watch(ctx context.Context, cfg func() *config.Config) {
	last := map[string]time.Time{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, ca := range cfg().UserCAs() {
			if ca.VaultMount == "" || time.Since(last[ca.VaultMount]) < ca.VaultRefresh {
				continue
			}
			last[ca.VaultMount] = time.Now()
			if err := v.refresh(ctx, ca); err != nil && ctx.Err() == nil {
				v.log.Warn("reading the Vault SSH CA key failed; the keys held are kept", zap.String("ca", ca.Name), zap.Error(err))
			}
		}
	}
}

// startVaultCAs reads the key of every user_cas entry with vault_mount
// and keeps them fresh until the server closes.
func (s *Server) startVaultCAs() error {
	var vcas []*config.UserCA
	for _, ca := range s.conf().UserCAs() {
		if ca.VaultMount != "" {
			vcas = append(vcas, ca)
		}
	}
	if s.opts.SSHCA == nil {
		if len(vcas) > 0 {
			return fmt.Errorf("gateway: user_cas.%s has vault_mount %s but no Vault client reads it", vcas[0].Name, vcas[0].VaultMount)
		}
		s.auth.vaultKeys = func(*config.UserCA) []gossh.PublicKey { return nil }
		return nil
	}
	v := newVaultCAs(s.opts.SSHCA, s.now, s.log.Named("user-ca"))
	for _, ca := range vcas {
		if err := v.refresh(context.Background(), ca); err != nil {
			return fmt.Errorf("user_cas.%s: reading the CA key from Vault at %s/public_key: %w (is the SSH secrets engine mounted there with a CA: vault write %s/config/ca generate_signing_key=true?)",
				ca.Name, ca.VaultMount, err, ca.VaultMount)
		}
		s.log.Info("trusting the Vault SSH CA", zap.String("ca", ca.Name), zap.String("mount", ca.VaultMount), zap.String("fingerprint", gossh.FingerprintSHA256(v.Keys(ca)[0])))
	}
	s.auth.vaultKeys = v.Keys
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); v.watch(ctx, s.conf) }()
	s.closers = append(s.closers, func() error { cancel(); <-done; return nil })
	return nil
}
