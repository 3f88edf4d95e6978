package cookies

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"go.yaml.in/yaml/v3"
)

// maxCookieFile bounds the size of a cookie file beamgate reads.
const maxCookieFile = 1 << 20

// ErrNoCookie reports a cluster the cookie store has no cookie for.
var ErrNoCookie = errors.New("cookies: no production cookie for cluster")

// PermissionError reports a cookie file that group or others may read.
type PermissionError struct {
	Path string
	Mode os.FileMode
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("cookies: %s has mode %04o, readable by group or others; run chmod 600 %s",
		e.Path, e.Mode.Perm(), e.Path)
}

// FileStore reads production cookies from a YAML file mapping cluster
// names to cookies ("prismatic: SECRET"). The file must not be readable by
// group or others. Cookies are cached after the first read; a fresh request
// re-reads the file, so rotating a cookie needs no restart.
type FileStore struct {
	Path string

	mu      sync.Mutex
	cookies map[string]string
}

// NewFileStore returns a store for path, reading it once to fail early on
// a missing, malformed or exposed file.
func NewFileStore(path string) (*FileStore, error) {
	s := &FileStore{Path: path}
	if _, err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// ProductionCookie returns the cookie for cluster. fresh re-reads the file.
func (s *FileStore) ProductionCookie(ctx context.Context, cluster string, fresh bool) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	m := s.cookies
	s.mu.Unlock()
	if m == nil || fresh {
		var err error
		if m, err = s.load(); err != nil {
			return "", err
		}
	}
	c, ok := m[cluster]
	if !ok || c == "" {
		return "", fmt.Errorf("%w %q in %s", ErrNoCookie, cluster, s.Path)
	}
	return c, nil
}

// PreviousProductionCookie is always "": a cookie file keeps no history.
// Rotate a file-backed cluster by changing every node and the file
// together.
func (s *FileStore) PreviousProductionCookie(context.Context, string) (string, error) { return "", nil }

// Clusters lists the clusters the file has cookies for.
func (s *FileStore) Clusters() ([]string, error) {
	m, err := s.load()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out, nil
}

// load reads and parses the file, refusing one readable by group or others.
// Errors never contain a cookie.
func (s *FileStore) load() (map[string]string, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, fmt.Errorf("cookies: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cookies: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cookies: %s is not a regular file", s.Path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &PermissionError{Path: s.Path, Mode: fi.Mode()}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCookieFile+1))
	if err != nil {
		return nil, fmt.Errorf("cookies: %w", err)
	}
	if len(data) > maxCookieFile {
		return nil, fmt.Errorf("cookies: %s is larger than %d bytes", s.Path, maxCookieFile)
	}
	m, err := parseCookieFile(data)
	if err != nil {
		return nil, fmt.Errorf("cookies: %s: %w", s.Path, err)
	}
	s.mu.Lock()
	s.cookies = m
	s.mu.Unlock()
	return m, nil
}

// parseCookieFile decodes "cluster: cookie" YAML. The YAML decoder's own
// errors may quote file content, so they are replaced by a line number.
func parseCookieFile(data []byte) (map[string]string, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]string{}, nil
		}
		return nil, errors.New("not valid YAML (expected lines of cluster: cookie)")
	}
	if len(root.Content) == 0 {
		return map[string]string{}, nil
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: expected a mapping of cluster: cookie", doc.Line)
	}
	m := make(map[string]string, len(doc.Content)/2)
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode || k.Value == "" {
			return nil, fmt.Errorf("line %d: expected cluster: cookie", k.Line)
		}
		if _, dup := m[k.Value]; dup {
			return nil, fmt.Errorf("line %d: cluster %q listed twice", k.Line, k.Value)
		}
		if v.Value == "" {
			return nil, fmt.Errorf("line %d: cluster %q has an empty cookie", k.Line, k.Value)
		}
		m[k.Value] = v.Value
	}
	return m, nil
}

// WriteFile writes cookies as a cookie file with mode 0600, replacing path
// atomically.
func WriteFile(path string, cookies map[string]string) error {
	out, err := yaml.Marshal(cookies)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cookies-*")
	if err != nil {
		return fmt.Errorf("cookies: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("cookies: %w", err)
	}
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("cookies: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cookies: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cookies: %w", err)
	}
	return nil
}
