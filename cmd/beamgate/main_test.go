package main

import (
	"beamgate/gateway/config"
	"beamgate/internal/beamtest"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "beamgate ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	if code := run(context.Background(), nil, &out, &errb); code != 2 {
		t.Errorf("no command: exit %d", code)
	}
	errb.Reset()
	if code := run(context.Background(), []string{"serve"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "--config FILE is required") {
		t.Errorf("serve without --config: exit %d %q", code, errb.String())
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:2222\n"), 0o600)
	errb.Reset()
	if code := run(context.Background(), []string{"serve", "--config", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "host_key: missing") {
		t.Errorf("serve with a bad config: exit %d %q", code, errb.String())
	}
}

func TestDevUserKeysAndConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	state := t.TempDir()
	keys, generated, err := devUserKeys(state)
	if err != nil || len(keys) != 1 || generated != filepath.Join(state, "dev_ed25519") {
		t.Fatalf("no ~/.ssh: keys %v generated %q err %v", keys, generated, err)
	}
	if fi, err := os.Stat(generated); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("generated key mode: %v %v", fi, err)
	}
	// The generated key is usable by OpenSSH.
	if _, err := exec.LookPath("ssh-keygen"); err == nil {
		if out, err := exec.Command("ssh-keygen", "-y", "-f", generated).CombinedOutput(); err != nil {
			t.Errorf("ssh-keygen -y: %v %s", err, out)
		}
	}
	// Again: the same key is reused.
	keys2, gen2, _ := devUserKeys(state)
	if gen2 != generated || keys2[0] != keys[0] {
		t.Errorf("key not reused")
	}
	// With ~/.ssh/*.pub, those keys are used.
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519.pub"),
		[]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKAd20RvmvISazwA72prLYb5SoFzxyCCaxh2UCkw0X12 me@laptop\n"), 0o644)
	keys3, gen3, _ := devUserKeys(state)
	if gen3 != "" || len(keys3) != 1 || !strings.HasSuffix(keys3[0], "me@laptop") {
		t.Errorf("~/.ssh keys: %v %q", keys3, gen3)
	}
	cfgPath := filepath.Join(state, "beamgate.yaml")
	if err := writeDevConfig(cfgPath, "127.0.0.1:2222", 4370, 14369, keys3, nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("dev config: %v", err)
	}
	if n := cfg.ReachableFor(cfg.Users["dev"].Roles); len(n) != len(demoNodes) || n[0].Name != demoNodes[0].name {
		t.Errorf("dev reaches %v", n)
	}
	if fi, err := os.Stat(filepath.Join(state, "cookies.yaml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cookie store: %v %v", fi, err)
	}
}

// A configuration that cannot start (its cookie file is missing) fails
// naming the fix, before it writes a host key, secret or audit log.
func TestServeFailsBeforeWriting(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(beamtest.ExampleConfig, "./state/cookies.yaml", "./missing-cookies.yaml", 1)
	path := filepath.Join(dir, "beamgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--config", path}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "does not exist: create it") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Errorf("serve wrote %s before failing", filepath.Join(dir, "state"))
	}
}
