package cookies

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// DefaultWatchInterval is how often Watch polls the revocation list: a
// revocation reaches every replica well within a second.
const DefaultWatchInterval = 250 * time.Millisecond

// MaxRevocations bounds the revocation list.
const MaxRevocations = 100000

// maxRevokeAttempts bounds Revoke's check-and-set retries under contention.
const maxRevokeAttempts = 20

// Revocation is one entry of the revocation list. It names at least one of
// User, Fingerprint, KeyID and Serial; a login matching any named field of
// any entry is refused.
type Revocation struct {
	ID          string    `json:"id"`                    // random, set by Revoke
	User        string    `json:"user,omitempty"`        // beamgate user name
	Fingerprint string    `json:"fingerprint,omitempty"` // SSH key, "SHA256:..."
	KeyID       string    `json:"key_id,omitempty"`      // certificate key id
	Serial      uint64    `json:"serial,omitempty,string"`
	Time        time.Time `json:"time"`
	Reason      string    `json:"reason"`
	Actor       string    `json:"actor"`
}

func (r Revocation) validate() error {
	if r.User == "" && r.Fingerprint == "" && r.KeyID == "" && r.Serial == 0 {
		return errors.New("cookies: a revocation names a user, key fingerprint, certificate key id or serial")
	}
	if r.Fingerprint != "" && !strings.HasPrefix(r.Fingerprint, "SHA256:") {
		return fmt.Errorf("cookies: key fingerprint %q is not of the form SHA256:<base64>", r.Fingerprint)
	}
	for _, f := range []string{r.User, r.Fingerprint, r.KeyID, r.Reason, r.Actor} {
		if len(f) > 1024 {
			return errors.New("cookies: revocation field longer than 1024 bytes")
		}
	}
	return nil
}

// revocationList is the KV data of the revocation list secret.
type revocationList struct {
	Entries []Revocation `json:"entries"`
}

// Snapshot is the revocation list at one KV version.
type Snapshot struct {
	Version int          // KV version (0 = no list yet)
	Entries []Revocation // in order of revocation
	// Added are the entries new since the previous snapshot Watch
	// reported (all entries in the first one).
	Added []Revocation

	users, fingerprints, keyIDs map[string]bool
	serials                     map[uint64]bool
}

func newSnapshot(version int, entries []Revocation) Snapshot {
	s := Snapshot{Version: version, Entries: entries,
		users: map[string]bool{}, fingerprints: map[string]bool{}, keyIDs: map[string]bool{}, serials: map[uint64]bool{}}
	for _, e := range entries {
		if e.User != "" {
			s.users[e.User] = true
		}
		if e.Fingerprint != "" {
			s.fingerprints[e.Fingerprint] = true
		}
		if e.KeyID != "" {
			s.keyIDs[e.KeyID] = true
		}
		if e.Serial != 0 {
			s.serials[e.Serial] = true
		}
	}
	return s
}

// Revoked reports whether a login by user with the key fingerprint, or
// the certificate key id and serial (0 = not a certificate), is revoked.
// Empty arguments match nothing; the zero Snapshot revokes nothing.
func (s Snapshot) Revoked(user, fingerprint, keyID string, serial uint64) bool {
	return (user != "" && s.users[user]) || (fingerprint != "" && s.fingerprints[fingerprint]) ||
		(keyID != "" && s.keyIDs[keyID]) || (serial != 0 && s.serials[serial])
}

// RevokedUsers returns the users named by Added, sorted, without
// duplicates: the users whose live sessions a replica must end.
func (s Snapshot) RevokedUsers() []string {
	var out []string
	for _, e := range s.Added {
		if e.User != "" {
			out = append(out, e.User)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Revocations is the revocation list in Vault KV v2 at
// <kv_mount>/<revocations_path>, shared by every gateway replica.
type Revocations struct {
	s    *VaultStore
	path string
}

// Revocations returns the revocation list of s's Vault.
func (s *VaultStore) Revocations() *Revocations {
	return &Revocations{s: s, path: s.cfg.RevocationsPath}
}

// List reads the revocation list.
func (rv *Revocations) List(ctx context.Context) (Snapshot, error) {
	version, list, err := rv.read(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	snap := newSnapshot(version, list.Entries)
	snap.Added = snap.Entries
	return snap, nil
}

func (rv *Revocations) read(ctx context.Context) (int, revocationList, error) {
	var list revocationList
	sec, err := rv.s.kvGet(ctx, rv.path, 0)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return 0, list, nil
	}
	if err != nil {
		return 0, list, err
	}
	if sec.VersionMetadata == nil {
		return 0, list, errors.New("cookies: revocation list without version metadata")
	}
	if sec.Data == nil { // latest version deleted
		return sec.VersionMetadata.Version, list, nil
	}
	list, err = decodeRevocationList(sec.Data)
	if err != nil {
		return 0, list, fmt.Errorf("cookies: revocation list version %d: %w", sec.VersionMetadata.Version, err)
	}
	return sec.VersionMetadata.Version, list, nil
}

// decodeRevocationList decodes the list's KV data. An entry that names
// nothing to revoke is refused rather than skipped: a list edited by hand
// into a shape beamgate does not understand must not silently revoke less.
func decodeRevocationList(data map[string]any) (revocationList, error) {
	var list revocationList
	switch raw := data["entries"].(type) {
	case nil:
	case []any:
		if len(raw) > MaxRevocations {
			return list, fmt.Errorf("%d entries, more than %d", len(raw), MaxRevocations)
		}
	default:
		return list, errors.New("entries is not a list")
	}
	if err := decodeKV(data, &list); err != nil {
		return revocationList{}, err
	}
	for i, e := range list.Entries {
		if e.User == "" && e.Fingerprint == "" && e.KeyID == "" && e.Serial == 0 {
			return revocationList{}, fmt.Errorf("entry %d names no user, key or certificate", i)
		}
	}
	return list, nil
}

// Revoke appends rev to the list with check-and-set, retrying when another
// writer got there first. It gives rev a random ID and, when zero, the
// current time.
func (rv *Revocations) Revoke(ctx context.Context, rev Revocation) error {
	if err := rev.validate(); err != nil {
		return err
	}
	rev.ID = randomSuffix() + randomSuffix()
	if rev.Time.IsZero() {
		rev.Time = time.Now().UTC()
	}
	for range maxRevokeAttempts {
		version, list, err := rv.read(ctx)
		if err != nil {
			return err
		}
		if len(list.Entries) >= MaxRevocations {
			return fmt.Errorf("cookies: revocation list is full (%d entries)", MaxRevocations)
		}
		list.Entries = append(list.Entries, rev)
		data, err := encodeKV(list)
		if err != nil {
			return err
		}
		_, err = casPut(ctx, rv.s, rv.path, data, version, func(got map[string]any) bool {
			var l revocationList
			return decodeKV(got, &l) == nil && slices.ContainsFunc(l.Entries, func(e Revocation) bool { return e.ID == rev.ID })
		})
		if err == nil {
			rv.s.log.Info("revoked", zap.String("user", rev.User), zap.String("fingerprint", rev.Fingerprint),
				zap.String("key_id", rev.KeyID), zap.Uint64("serial", rev.Serial), zap.String("actor", rev.Actor))
			return nil
		}
		if !isCASMismatch(err) {
			return err
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("cookies: revocation list kept changing; gave up after %d attempts", maxRevokeAttempts)
}

// Watch polls the list every interval (DefaultWatchInterval when <= 0)
// and calls fn with the first snapshot and then with every changed one,
// until ctx ends. Read failures keep the last snapshot (revocations are
// never forgotten because Vault is down) and are logged.
func (rv *Revocations) Watch(ctx context.Context, interval time.Duration, fn func(Snapshot)) error {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	var last *Snapshot
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		version, list, err := rv.read(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !failing {
				rv.s.log.Warn("reading the revocation list; keeping the last one", zap.Error(err))
			}
			failing = true
		case last == nil || version != last.Version:
			failing = false
			snap := newSnapshot(version, list.Entries)
			snap.Added = addedSince(last, snap)
			last = &snap
			fn(snap)
		default:
			failing = false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// addedSince returns the entries of cur whose IDs prev lacks.
func addedSince(prev *Snapshot, cur Snapshot) []Revocation {
	if prev == nil {
		return cur.Entries
	}
	ids := make(map[string]bool, len(prev.Entries))
	for _, e := range prev.Entries {
		ids[e.ID] = true
	}
	var out []Revocation
	for _, e := range cur.Entries {
		if !ids[e.ID] {
			out = append(out, e)
		}
	}
	return out
}

func randomSuffix() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
