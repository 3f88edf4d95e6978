package cookies

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	vault "github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// This file is the Vault side of a production cookie rotation: the
// rotation state a crashed rotation resumes from, and the check-and-set
// write of a new cookie version. The node side (set_cookie on every node,
// verification, audit) is package gateway/rotate.

// GeneratedCookieLen is the length of a cookie Rotate generates.
const GeneratedCookieLen = 32

// cookieAlphabet holds the characters of generated cookies: valid in an
// unquoted -setcookie argument and in an atom.
const cookieAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// Rotation states kept in Vault (RotationState.State).
const (
	RotationWriting = "writing" // the new cookie may not be in Vault yet
	RotationSetting = "setting" // the new cookie is in Vault; nodes follow
	RotationDone    = "done"
)

// RotationState is the progress of a cluster's rotation, kept in Vault at
// <kv_mount>/<rotations_path>/<cluster> so a crashed rotation can be
// finished by any later run.
type RotationState struct {
	State       string    `json:"state"`
	FromVersion int       `json:"from_version"`
	ToVersion   int       `json:"to_version"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished,omitzero"`
	Actor       string    `json:"actor,omitempty"`
	NodesDone   []string  `json:"nodes_done,omitempty"`
}

// ErrRotationConflict reports that the cluster's secret changed under a
// rotation, or another rotation runs.
var ErrRotationConflict = errors.New("cookies: rotation conflict")

// GenerateCookie returns a GeneratedCookieLen-character cookie of A-Z and
// 0-9 read from r (crypto/rand when nil), without modulo bias.
func GenerateCookie(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	const limit = 256 - 256%len(cookieAlphabet)
	out := make([]byte, 0, GeneratedCookieLen)
	buf := make([]byte, 64)
	for tries := 0; len(out) < GeneratedCookieLen; tries++ {
		if tries > 64 {
			return "", errors.New("cookies: random source keeps returning unusable bytes")
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("cookies: random source: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < GeneratedCookieLen {
				out = append(out, cookieAlphabet[int(b)%len(cookieAlphabet)])
			}
		}
	}
	return string(out), nil
}

// RotationState reads cluster's rotation state and the KV version it is
// at; nil (and version 0, or the version of a deleted state) when there
// is none.
func (s *VaultStore) RotationState(ctx context.Context, cluster string) (*RotationState, int, error) {
	if err := CheckCluster(cluster); err != nil {
		return nil, 0, err
	}
	sec, err := s.kvGet(ctx, s.rotationPath(cluster), 0)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if sec.VersionMetadata == nil {
		return nil, 0, errors.New("cookies: rotation state without version metadata")
	}
	if sec.Data == nil { // deleted: treat as no rotation
		return nil, sec.VersionMetadata.Version, nil
	}
	var st RotationState
	if err := decodeKV(sec.Data, &st); err != nil {
		return nil, 0, fmt.Errorf("cookies: rotation state of %q: %w", cluster, err)
	}
	return &st, sec.VersionMetadata.Version, nil
}

// SaveRotationState writes st with check-and-set on version (the one
// RotationState or the previous save returned), so two rotations of one
// cluster cannot both proceed, and returns the new version.
func (s *VaultStore) SaveRotationState(ctx context.Context, cluster string, st RotationState, version int) (int, error) {
	data, err := encodeKV(st)
	if err != nil {
		return 0, err
	}
	v, err := casPut(ctx, s, s.rotationPath(cluster), data, version, func(got map[string]any) bool {
		var cur RotationState
		return decodeKV(got, &cur) == nil && cur.State == st.State && slices.Equal(cur.NodesDone, st.NodesDone) &&
			cur.ToVersion == st.ToVersion
	})
	if err != nil {
		if isCASMismatch(err) {
			return 0, fmt.Errorf("%w: another rotation of cluster %q is writing its state", ErrRotationConflict, cluster)
		}
		return 0, err
	}
	return v, nil
}

// WriteCookie writes cookie as the next KV version of cluster's secret,
// with check-and-set on fromVersion, and returns the version written. A
// concurrent change is ErrRotationConflict.
func (s *VaultStore) WriteCookie(ctx context.Context, cluster, cookie string, fromVersion int) (int, error) {
	if err := CheckCluster(cluster); err != nil {
		return 0, err
	}
	v, err := casPut(ctx, s, s.ClusterPath(cluster), map[string]any{CookieField: cookie},
		fromVersion, func(got map[string]any) bool { return got[CookieField] == cookie })
	if err != nil {
		if isCASMismatch(err) {
			return 0, fmt.Errorf("%w: cluster %q changed in Vault while rotating (expected version %d)",
				ErrRotationConflict, cluster, fromVersion)
		}
		return 0, err
	}
	return v, nil
}

// CurrentCookie reads cluster's newest cookie and its KV version,
// bypassing the cache.
func (s *VaultStore) CurrentCookie(ctx context.Context, cluster string) (string, int, error) {
	return s.readCurrent(ctx, cluster)
}

// CookieAt reads the cookie of one KV version of cluster's secret.
func (s *VaultStore) CookieAt(ctx context.Context, cluster string, version int) (string, error) {
	return s.readVersion(ctx, cluster, version)
}

// Forget drops cluster's cached cookies, so the next read goes to Vault.
func (s *VaultStore) Forget(cluster string) { s.forget(cluster) }

// rotationPath is the KV path of the cluster's rotation state.
func (s *VaultStore) rotationPath(cluster string) string { return s.cfg.RotationsPath + "/" + cluster }

// casPut writes data at path with check-and-set on version cas and returns
// the new version. A CAS refusal is checked with ours: if the current
// value is ours, an earlier try of this write landed.
func casPut(ctx context.Context, s *VaultStore, path string, data map[string]any, cas int, ours func(map[string]any) bool) (int, error) {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout*time.Duration(s.cfg.MaxRetries+2))
	defer cancel()
	sec, err := s.kv.Put(wctx, path, data, vault.WithCheckAndSet(cas))
	if err == nil {
		if sec == nil || sec.VersionMetadata == nil {
			return 0, fmt.Errorf("cookies: vault write of %s returned no version", path)
		}
		return sec.VersionMetadata.Version, nil
	}
	if !isCASMismatch(err) {
		return 0, s.vaultErr("writing "+s.cfg.KVMount+"/"+path, err)
	}
	cur, rerr := s.kvGet(ctx, path, 0)
	if rerr == nil && cur.VersionMetadata != nil && cur.VersionMetadata.Version == cas+1 && cur.Data != nil && ours(cur.Data) {
		s.log.Info("check-and-set refusal was our own retried write", zap.String("path", path), zap.Int("version", cas+1))
		return cas + 1, nil
	}
	return 0, err
}

// decodeKV converts KV data (JSON numbers as json.Number) into v.
func decodeKV(data map[string]any, v any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// encodeKV converts v into KV data.
func encodeKV(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}
