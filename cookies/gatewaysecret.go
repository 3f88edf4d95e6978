package cookies

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	vault "github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// maxSecret bounds a gateway secret read from Vault.
const maxSecret = 1024

// maxSecretAttempts bounds check-and-set retries when replicas create or
// rotate the gateway secret at once.
const maxSecretAttempts = 10

// DefaultSecretWatchInterval is how often a gateway re-reads the gateway
// secret from Vault, so a rotation reaches every replica.
const DefaultSecretWatchInterval = 2 * time.Second

// Secrets are the gateway-cookie secrets in force: cookies are derived from
// Current; cookies derived from Previous are still accepted until
// PreviousUntil (one cookie window after the rotation), so a rotation
// never refuses a cookie an engineer was just given.
type Secrets struct {
	Current       []byte
	Previous      []byte    // nil when there was no rotation
	PreviousUntil time.Time // zero when Previous is nil
	Version       int       // KV version (0 for a file secret)
	RotatedAt     time.Time // zero before the first rotation
}

// Keyring holds the Secrets a Gateway derives cookies from, replaced
// whole when they rotate. Safe for concurrent use.
type Keyring struct{ p atomic.Pointer[Secrets] }

// NewKeyring returns a Keyring holding s.
func NewKeyring(s *Secrets) *Keyring {
	k := &Keyring{}
	k.p.Store(s)
	return k
}

// Load returns the Secrets in force.
func (k *Keyring) Load() *Secrets { return k.p.Load() }

// Store puts s in force.
func (k *Keyring) Store(s *Secrets) { k.p.Store(s) }

// gatewaySecretData is the KV data of the gateway secret: base64 secrets
// and RFC 3339 times.
type gatewaySecretData struct {
	Current       string `json:"current"`
	Previous      string `json:"previous,omitempty"`
	PreviousUntil string `json:"previous_until,omitempty"`
	RotatedAt     string `json:"rotated_at,omitempty"`
}

func (d gatewaySecretData) secrets(version int) (*Secrets, error) {
	dec := func(field, v string) ([]byte, error) {
		if len(v) > maxSecret*2 {
			return nil, fmt.Errorf("%s is longer than %d bytes", field, maxSecret)
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("%s is not base64", field)
		}
		if len(b) < minSecret || len(b) > maxSecret {
			return nil, fmt.Errorf("%s holds %d bytes, want %d to %d", field, len(b), minSecret, maxSecret)
		}
		return b, nil
	}
	cur, err := dec("current", d.Current)
	if err != nil {
		return nil, err
	}
	s := &Secrets{Current: cur, Version: version}
	if d.RotatedAt != "" {
		if s.RotatedAt, err = time.Parse(time.RFC3339Nano, d.RotatedAt); err != nil {
			return nil, errors.New("rotated_at is not an RFC 3339 time")
		}
	}
	if d.Previous == "" {
		return s, nil
	}
	if s.Previous, err = dec("previous", d.Previous); err != nil {
		return nil, err
	}
	if s.PreviousUntil, err = time.Parse(time.RFC3339Nano, d.PreviousUntil); err != nil {
		return nil, errors.New("previous_until is not an RFC 3339 time")
	}
	return s, nil
}

// GatewaySecretPath returns the KV path (below the mount) of the gateway
// secret.
func (s *VaultStore) GatewaySecretPath() string { return s.cfg.GatewaySecretPath }

// GatewaySecrets reads the gateway secret. When Vault has none yet, the
// first replica to ask creates one (check-and-set, so replicas starting
// together agree on a single secret). A malformed secret is an error, not
// replaced: replicas must never silently derive different cookies.
func (s *VaultStore) GatewaySecrets(ctx context.Context) (*Secrets, error) {
	path := s.cfg.GatewaySecretPath
	for range maxSecretAttempts {
		sec, err := s.kvGet(ctx, path, 0)
		if errors.Is(err, vault.ErrSecretNotFound) {
			fresh, err := newSecret()
			if err != nil {
				return nil, err
			}
			data, err := encodeKV(gatewaySecretData{Current: base64.StdEncoding.EncodeToString(fresh)})
			if err != nil {
				return nil, err
			}
			v, err := casPut(ctx, s, path, data, 0, func(m map[string]any) bool { return m["current"] == data["current"] })
			if isCASMismatch(err) {
				continue // another replica created it first: read theirs
			}
			if isForbidden(err) {
				return nil, fmt.Errorf("cookies: there is no gateway secret at %s/%s yet, and this gateway's Vault policy may not create it: run `beamgate cookie rotate-gateway-secret --config FILE` once with the beamgate-gateway policy", s.cfg.KVMount, path)
			}
			if err != nil {
				return nil, err
			}
			s.log.Info("created the gateway secret in vault", zap.String("path", s.cfg.KVMount+"/"+path), zap.Int("version", v))
			return &Secrets{Current: fresh, Version: v}, nil
		}
		if err != nil {
			return nil, err
		}
		return gatewaySecretOf(s.cfg.KVMount+"/"+path, sec)
	}
	return nil, fmt.Errorf("cookies: the gateway secret at %s/%s changed %d times while being read; try again", s.cfg.KVMount, path, maxSecretAttempts)
}

func gatewaySecretOf(where string, sec *vault.KVSecret) (*Secrets, error) {
	if sec == nil || sec.VersionMetadata == nil {
		return nil, fmt.Errorf("cookies: the gateway secret at %s has no version", where)
	}
	var d gatewaySecretData
	if err := decodeKV(sec.Data, &d); err != nil {
		return nil, fmt.Errorf("cookies: the gateway secret at %s (version %d) is malformed", where, sec.VersionMetadata.Version)
	}
	g, err := d.secrets(sec.VersionMetadata.Version)
	if err != nil {
		return nil, fmt.Errorf("cookies: the gateway secret at %s (version %d): %v", where, sec.VersionMetadata.Version, err)
	}
	return g, nil
}

// RotateGatewaySecret replaces the gateway secret with a new random one
// and keeps the old one accepted for window (the cookie window), so every
// engineer's cookie changes and none is refused meanwhile. It returns the
// new Secrets.
func (s *VaultStore) RotateGatewaySecret(ctx context.Context, window time.Duration, now time.Time) (*Secrets, error) {
	path := s.cfg.GatewaySecretPath
	for range maxSecretAttempts {
		old, err := s.GatewaySecrets(ctx)
		if err != nil {
			return nil, err
		}
		fresh, err := newSecret()
		if err != nil {
			return nil, err
		}
		d := gatewaySecretData{
			Current:       base64.StdEncoding.EncodeToString(fresh),
			Previous:      base64.StdEncoding.EncodeToString(old.Current),
			PreviousUntil: now.Add(window).UTC().Format(time.RFC3339Nano),
			RotatedAt:     now.UTC().Format(time.RFC3339Nano),
		}
		data, err := encodeKV(d)
		if err != nil {
			return nil, err
		}
		v, err := casPut(ctx, s, path, data, old.Version, func(m map[string]any) bool { return m["current"] == data["current"] })
		if isCASMismatch(err) {
			continue // rotated or created concurrently: start again from theirs
		}
		if err != nil {
			return nil, err
		}
		return d.secrets(v)
	}
	return nil, fmt.Errorf("cookies: the gateway secret at %s/%s kept changing during the rotation; try again", s.cfg.KVMount, path)
}

// WatchGatewaySecrets re-reads the gateway secret every interval until ctx
// ends and puts a changed one in ring. A failed read keeps the secrets in
// force (cookies stay valid while Vault is away) and is logged once per
// outage.
func (s *VaultStore) WatchGatewaySecrets(ctx context.Context, ring *Keyring, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSecretWatchInterval
	}
	failing := false
	for sleepCtx(ctx, interval) {
		g, err := s.GatewaySecrets(ctx)
		if err != nil {
			if !failing && ctx.Err() == nil {
				s.log.Warn("reading the gateway secret from vault failed; the secret in force is kept", zap.Error(err))
			}
			failing = true
			continue
		}
		failing = false
		if cur := ring.Load(); cur == nil || cur.Version != g.Version || !bytes.Equal(cur.Current, g.Current) {
			ring.Store(g)
			s.log.Info("the gateway secret rotated", zap.Int("version", g.Version))
		}
	}
}

func newSecret() ([]byte, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("cookies: generating a gateway secret: %w", err)
	}
	return b, nil
}

// maxSSHCAKey bounds the CA key read from Vault's SSH engine.
const maxSSHCAKey = 16 << 10

// SSHCAPublicKey reads the CA public key of Vault's SSH secrets engine at
// mount (GET MOUNT/public_key, which needs no token), as an OpenSSH public
// key line. The gateway trusts user certificates it signed.
func (s *VaultStore) SSHCAPublicKey(ctx context.Context, mount string) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout*time.Duration(s.cfg.MaxRetries+1))
	defer cancel()
	resp, err := s.client.Logical().ReadRawWithContext(rctx, strings.Trim(mount, "/")+"/public_key")
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return "", s.vaultErr("reading "+mount+"/public_key", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("cookies: vault reading %s/public_key: status %d (no SSH CA there?)", mount, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSSHCAKey+1))
	if err != nil {
		return "", s.vaultErr("reading "+mount+"/public_key", err)
	}
	if len(b) > maxSSHCAKey {
		return "", fmt.Errorf("cookies: vault %s/public_key is longer than %d bytes", mount, maxSSHCAKey)
	}
	return strings.TrimSpace(string(b)), nil
}
