package doccheck

import (
	"errors"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestPackageDocs fails for every package directory under the repository
// root (both modules) whose non-test files carry no doc comment of the form
// "// Package <name> ..." (or "// Command <name> ..." for package main).
func TestPackageDocs(t *testing.T) {
	root := repoRoot(t)
	dirs := packageDirs(t, root)
	if len(dirs) < 5 {
		t.Fatalf("found only %d package directories under %s; the walk is broken", len(dirs), root)
	}
	var missing []string
	for _, dir := range dirs {
		rel, _ := filepath.Rel(root, dir)
		name, ok, err := hasPackageDoc(dir)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if !ok {
			want := "// Package " + name + " ..."
			if name == "main" {
				want = "// Command " + filepath.Base(dir) + " ..."
			}
			missing = append(missing, "./"+filepath.ToSlash(rel)+" (package "+name+"): add "+want)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d package(s) without a package doc comment:\n\t%s",
			len(missing), strings.Join(missing, "\n\t"))
	}
}

// repoRoot walks up from the test's directory to the root module's go.mod
// (the first go.mod whose module line is "module beamgate").
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(string(b)) == "beamgate" {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod with `module beamgate` above the test directory")
		}
		dir = parent
	}
}

func modulePath(gomod string) string {
	for _, line := range strings.Split(gomod, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// packageDirs lists every directory under root holding a non-test .go file,
// skipping testdata, vendor, and directories whose names start with "." or
// "_" (the go tool ignores those too). Nested modules (cookies/vaulttest)
// are walked like any other directory.
func packageDirs(t *testing.T, root string) []string {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") &&
			!strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "_") {
			seen[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, 0, len(seen))
	for dir := range seen {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	return dirs
}

// hasPackageDoc reports the package name in dir and whether one of its
// non-test files has a proper package doc comment. Build constraints are
// ignored (UseAllFiles) except //go:build ignore, so a doc comment in a
// file for another OS still counts; only package clauses and comments are
// parsed, so the check works while other files fail to compile.
func hasPackageDoc(dir string) (name string, ok bool, err error) {
	pkg, err := build.ImportDir(dir, build.ImportComment)
	var noGo *build.NoGoError
	if errors.As(err, &noGo) {
		// Every file is excluded for this platform: fall back to all files.
		ctx := build.Default
		ctx.UseAllFiles = true
		pkg, err = ctx.ImportDir(dir, build.ImportComment)
	}
	if err != nil {
		return "", false, err
	}
	files := append(append([]string{}, pkg.GoFiles...), pkg.CgoFiles...)
	for _, f := range pkg.IgnoredGoFiles {
		if !strings.HasSuffix(f, "_test.go") && !ignoreTagged(filepath.Join(dir, f)) {
			files = append(files, f)
		}
	}
	name = pkg.Name
	prefix := "Package " + name + " "
	if name == "main" {
		prefix = "Command "
	}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, filepath.Join(dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return name, false, err
		}
		if af.Name.Name != name || af.Doc == nil {
			continue
		}
		if text := af.Doc.Text(); strings.HasPrefix(text, prefix) && len(strings.TrimSpace(text)) > len(prefix) {
			return name, true, nil
		}
	}
	return name, false, nil
}

// ignoreTagged reports whether the file is excluded by //go:build ignore
// (a standalone program living next to the package, not part of it).
func ignoreTagged(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "package ") {
			return false
		}
		if strings.HasPrefix(line, "//go:build") && strings.Contains(line, "ignore") {
			return true
		}
	}
	return false
}
