package beamtest

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildTimeout bounds building the beamgate binary.
const buildTimeout = 5 * time.Minute

// ModuleRoot returns the directory of the beamgate module, from a test of
// that module or of one that requires it through a replace directive
// (cookies/vaulttest).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "beamgate").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("beamtest: go list -m beamgate: %v %q", err, out)
	}
	return dir
}

// BuildBeamgate builds the real beamgate binary (./cmd/beamgate, in the
// beamgate module with its own go.mod) into dir and returns its path.
func BuildBeamgate(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "beamgate")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/beamgate")
	cmd.Dir = ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("beamtest: go build ./cmd/beamgate: %v\n%s", err, out)
	}
	return bin
}
