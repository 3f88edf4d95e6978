package cookies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	vault "github.com/hashicorp/vault/api"
)

// MaxDoc bounds a stored document (the break-glass book).
const MaxDoc = 4 << 20

// DefaultShellsPath is the KV path of the break-glass requests and grants.
const DefaultShellsPath = "beamgate/break-glass"

// ErrDocConflict is a check-and-set refusal: the document changed since it
// was loaded; load it again and retry.
var ErrDocConflict = errors.New("cookies: the document changed meanwhile")

// DocStore keeps one JSON document shared by every replica, written with
// check-and-set on its version (0: it does not exist yet).
type DocStore interface {
	Load(ctx context.Context) (doc []byte, version int, err error)
	Store(ctx context.Context, doc []byte, version int) error
}

// UpdateDoc loads the document, applies fn and stores the result, again
// from the start when another writer got there first (bounded).
func UpdateDoc(ctx context.Context, s DocStore, fn func(doc []byte) ([]byte, error)) error {
	for range 20 {
		doc, v, err := s.Load(ctx)
		if err != nil {
			return err
		}
		out, err := fn(doc)
		if err != nil {
			return err
		}
		if len(out) > MaxDoc {
			return fmt.Errorf("cookies: the document would be %d bytes, over %d", len(out), MaxDoc)
		}
		err = s.Store(ctx, out, v)
		if errors.Is(err, ErrDocConflict) {
			continue
		}
		return err
	}
	return errors.New("cookies: the document kept changing; try again")
}

// vaultDoc is a DocStore in Vault KV v2.
type vaultDoc struct {
	s    *VaultStore
	path string
}

// Doc returns the DocStore at KV path (below the mount).
func (s *VaultStore) Doc(path string) DocStore { return &vaultDoc{s: s, path: path} }

func (d *vaultDoc) Load(ctx context.Context) ([]byte, int, error) {
	sec, err := d.s.kvGet(ctx, d.path, 0)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if sec == nil || sec.VersionMetadata == nil {
		return nil, 0, fmt.Errorf("cookies: %s/%s has no version", d.s.cfg.KVMount, d.path)
	}
	text, _ := sec.Data["doc"].(string)
	if len(text) > MaxDoc {
		return nil, 0, fmt.Errorf("cookies: %s/%s is over %d bytes", d.s.cfg.KVMount, d.path, MaxDoc)
	}
	return []byte(text), sec.VersionMetadata.Version, nil
}

func (d *vaultDoc) Store(ctx context.Context, doc []byte, version int) error {
	data := map[string]any{"doc": string(doc)}
	_, err := casPut(ctx, d.s, d.path, data, version, func(m map[string]any) bool { return m["doc"] == data["doc"] })
	if isCASMismatch(err) {
		return ErrDocConflict
	}
	return err
}

// fileDoc is a DocStore in a local file (one gateway, no Vault): JSON
// {"version": N, "doc": ...}, mode 0600, replaced atomically under an
// exclusive lock on a sibling lock file, so `beamgate` commands and the
// gateway can share it.
type fileDoc struct{ path string }

// FileDoc returns the DocStore in the file at path.
func FileDoc(path string) DocStore { return &fileDoc{path: path} }

type fileDocData struct {
	Version int             `json:"version"`
	Doc     json.RawMessage `json:"doc"`
}

func (f *fileDoc) lock() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(f.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(lf.Fd()), syscall.LOCK_UN); lf.Close() }, nil
}

func (f *fileDoc) read() (fileDocData, error) {
	var d fileDocData
	b, err := readBounded(f.path, MaxDoc+64)
	if errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("cookies: %s is not a beamgate document: %w", f.path, err)
	}
	return d, nil
}

func (f *fileDoc) Load(context.Context) ([]byte, int, error) {
	unlock, err := f.lock()
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	d, err := f.read()
	return d.Doc, d.Version, err
}

func (f *fileDoc) Store(_ context.Context, doc []byte, version int) error {
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	d, err := f.read()
	if err != nil {
		return err
	}
	if d.Version != version {
		return ErrDocConflict
	}
	if !json.Valid(doc) {
		return errors.New("cookies: the document is not JSON")
	}
	b, err := json.Marshal(fileDocData{Version: version + 1, Doc: doc})
	if err != nil {
		return err
	}
	tmp := f.path + ".tmp"
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := w.Write(b)
	serr := w.Sync()
	if err := errors.Join(werr, serr, w.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, f.path)
}
