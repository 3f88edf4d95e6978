package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"beamgate/cookies"
	"beamgate/gateway/config"
	"beamgate/internal/beamtest"
)

func TestAssemble(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "beamgate.yaml")
	os.WriteFile(path, []byte(beamtest.ExampleConfig), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(cfg.Cookies.File), 0o700)
	// A cookie file readable by others is refused.
	os.WriteFile(cfg.Cookies.File, []byte("prismatic: X\n"), 0o644)
	os.Chmod(cfg.Cookies.File, 0o644)
	if _, err := assemble(cfg, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("exposed cookie file: %v", err)
	}
	// A cluster without a cookie is refused with the fix.
	cookies.WriteFile(cfg.Cookies.File, map[string]string{"other": "X"})
	if _, err := assemble(cfg, nil); err == nil || !strings.Contains(err.Error(), `add a line "prismatic: COOKIE"`) {
		t.Fatalf("missing cluster cookie: %v", err)
	}
	cookies.WriteFile(cfg.Cookies.File, map[string]string{"prismatic": "X"})
	srv, err := assemble(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, p := range []string{cfg.HostKey, cfg.GatewaySecretFile, cfg.Audit.Path} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v %v", p, fi, err)
		}
	}
}
