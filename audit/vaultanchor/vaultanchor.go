// Package vaultanchor keeps audit checkpoints in Vault: Transit signs
// them with an ed25519 key the gateway can use but never read or delete,
// and KV v2 holds the latest checkpoint of each replica, out of reach of
// anyone who can only write the bastion's disk.
//
// The gateway's Vault policy needs update on transit/sign/<key> and
// create/update on the KV checkpoint path only (deploy/vault); a reviewer's
// needs read on transit/keys/<key> and the KV path.
package vaultanchor

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"beamgate/audit"

	vault "github.com/hashicorp/vault/api"
)

// Defaults.
const (
	DefaultTransitMount = "transit"
	DefaultKey          = "beamgate-audit"
	DefaultPath         = "beamgate/audit/checkpoints"
)

// Config says where the key and the checkpoints are.
type Config struct {
	TransitMount string // "transit"
	Key          string // the Transit key, type ed25519
	KVMount      string // the KV v2 mount, e.g. "secret"
	Path         string // below KVMount; a replica's checkpoint is at Path/<replica>
}

func (c Config) withDefaults() Config {
	if c.TransitMount == "" {
		c.TransitMount = DefaultTransitMount
	}
	if c.Key == "" {
		c.Key = DefaultKey
	}
	if c.KVMount == "" {
		c.KVMount = "secret"
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	return c
}

// Transit signs checkpoints with a Vault Transit key.
type Transit struct {
	c   *vault.Client
	cfg Config
}

// NewTransit returns a signer; client must be logged in (the cookie
// store's client renews its token).
func NewTransit(client *vault.Client, cfg Config) *Transit {
	return &Transit{c: client, cfg: cfg.withDefaults()}
}

// KeyID implements audit.Signer: "vault-transit:<mount>/<key>". The key
// version is in each signature ("vault:vN:...").
func (t *Transit) KeyID() string { return keyID(t.cfg) }

func keyID(c Config) string { return "vault-transit:" + c.TransitMount + "/" + c.Key }

// Sign implements audit.Signer.
func (t *Transit) Sign(ctx context.Context, msg []byte) (string, error) {
	sec, err := t.c.Logical().WriteWithContext(ctx, t.cfg.TransitMount+"/sign/"+t.cfg.Key,
		map[string]any{"input": base64.StdEncoding.EncodeToString(msg)})
	if err != nil {
		return "", fmt.Errorf("vault transit sign with %s: %w", t.cfg.Key, err)
	}
	if sec == nil || sec.Data == nil {
		return "", errors.New("vault transit sign: empty answer")
	}
	sig, _ := sec.Data["signature"].(string)
	if !strings.HasPrefix(sig, "vault:v") {
		return "", fmt.Errorf("vault transit sign: unexpected signature %.16q", sig)
	}
	return sig, nil
}

// Keys verifies Transit signatures with the key's public halves, fetched
// once (read on transit/keys/<key>; no export).
type Keys struct {
	cfg Config
	pub map[int]ed25519.PublicKey
}

// FetchKeys reads the public keys of cfg's Transit key.
func FetchKeys(ctx context.Context, client *vault.Client, cfg Config) (*Keys, error) {
	cfg = cfg.withDefaults()
	sec, err := client.Logical().ReadWithContext(ctx, cfg.TransitMount+"/keys/"+cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("vault: reading the public key of %s/%s: %w", cfg.TransitMount, cfg.Key, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("vault: no transit key %s/%s", cfg.TransitMount, cfg.Key)
	}
	if typ, _ := sec.Data["type"].(string); typ != "ed25519" {
		return nil, fmt.Errorf("vault: transit key %s is of type %q; beamgate signs checkpoints with an ed25519 key", cfg.Key, typ)
	}
	keys, _ := sec.Data["keys"].(map[string]any)
	k := &Keys{cfg: cfg, pub: map[int]ed25519.PublicKey{}}
	for ver, v := range keys {
		n, err := strconv.Atoi(ver)
		if err != nil {
			continue
		}
		m, _ := v.(map[string]any)
		b64, _ := m["public_key"].(string)
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("vault: transit key %s version %s: bad public key", cfg.Key, ver)
		}
		k.pub[n] = raw
	}
	if len(k.pub) == 0 {
		return nil, fmt.Errorf("vault: transit key %s has no public keys", cfg.Key)
	}
	return k, nil
}

// Knows implements audit.Verifier.
func (k *Keys) Knows(id string) bool { return id == keyID(k.cfg) }

// Verify implements audit.Verifier.
func (k *Keys) Verify(id string, msg []byte, sig string) error {
	if !k.Knows(id) {
		return fmt.Errorf("%w: signed by %s, the verification key is %s", audit.ErrBadSignature, id, keyID(k.cfg))
	}
	rest, ok := strings.CutPrefix(sig, "vault:v")
	ver, b64, ok2 := strings.Cut(rest, ":")
	n, err := strconv.Atoi(ver)
	if !ok || !ok2 || err != nil {
		return fmt.Errorf("%w: not a Vault signature", audit.ErrBadSignature)
	}
	pub, ok := k.pub[n]
	if !ok {
		return fmt.Errorf("%w: key version %d of %s is unknown", audit.ErrBadSignature, n, k.cfg.Key)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || !ed25519.Verify(pub, msg, raw) {
		return fmt.Errorf("%w with %s version %d", audit.ErrBadSignature, k.cfg.Key, n)
	}
	return nil
}

// KV keeps each replica's latest checkpoint in Vault KV v2.
type KV struct {
	kv  *vault.KVv2
	cfg Config
}

// NewKV returns the anchor.
func NewKV(client *vault.Client, cfg Config) *KV {
	cfg = cfg.withDefaults()
	return &KV{kv: client.KVv2(cfg.KVMount), cfg: cfg}
}

func (a *KV) path(replica string) string { return a.cfg.Path + "/" + replica }

// Store implements audit.Anchor.
func (a *KV) Store(ctx context.Context, c audit.Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	var data map[string]any
	if err := json.Unmarshal(b, &data); err != nil {
		return err
	}
	if _, err := a.kv.Put(ctx, a.path(c.Replica), data); err != nil {
		return fmt.Errorf("vault: storing checkpoint at %s/%s: %w", a.cfg.KVMount, a.path(c.Replica), err)
	}
	return nil
}

// Latest implements audit.Anchor.
func (a *KV) Latest(ctx context.Context, replica string) (*audit.Checkpoint, error) {
	sec, err := a.kv.Get(ctx, a.path(replica))
	if errors.Is(err, vault.ErrSecretNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vault: reading checkpoint %s/%s: %w", a.cfg.KVMount, a.path(replica), err)
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	b, err := json.Marshal(sec.Data)
	if err != nil {
		return nil, err
	}
	var c audit.Checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("vault: checkpoint %s: %w", a.path(replica), err)
	}
	return &c, nil
}
