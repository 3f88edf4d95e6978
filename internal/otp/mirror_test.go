package otp

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The hosts below are under the reserved .invalid and .test domains: the
// repository names no real mirror.

func TestParseDeb822Sources(t *testing.T) {
	const in = `# written by the installer
Types: deb
# a comment inside a stanza
URIs: http://one.invalid/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
uris: cdrom:[Debian 12]/
  https://two.invalid/debian/
Suites: trixie
Components: main
Enabled: No


Types: deb
URIs: http://three.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBF...
 -----END PGP PUBLIC KEY BLOCK-----
`
	got, err := parseDeb822Sources(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []aptSource{
		{types: []string{"deb"}, uris: []string{"http://one.invalid/debian"}, suites: []string{"bookworm", "bookworm-updates"},
			components: []string{"main", "contrib"}, enabled: true},
		{types: []string{"deb", "deb-src"}, uris: []string{"cdrom:[Debian", "12]/", "https://two.invalid/debian/"}, suites: []string{"trixie"},
			components: []string{"main"}, enabled: false},
		{types: []string{"deb"}, uris: []string{"http://three.invalid/debian-security"}, suites: []string{"bookworm-security"},
			components: []string{"main"}, enabled: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseDeb822Sources =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseDeb822SourcesRejectsGarbage(t *testing.T) {
	for name, in := range map[string]string{
		"no colon":          "Types deb\n",
		"dangling continue": " http://one.invalid/debian\n",
	} {
		if _, err := parseDeb822Sources(strings.NewReader(in)); err == nil {
			t.Errorf("%s: parseDeb822Sources(%q) succeeded", name, in)
		}
	}
}

func TestParseSourcesList(t *testing.T) {
	const in = `# deb http://commented.invalid/debian bookworm main
deb http://one.invalid/debian bookworm main contrib non-free-firmware
deb-src http://one.invalid/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://two.invalid/debian trixie main # trailing comment
deb [ arch=amd64 ] http://three.invalid/debian sid main
deb	http://four.invalid/debian	bookworm-updates	main

deb [broken http://five.invalid/debian bookworm main
deb http://six.invalid/debian
`
	got, err := parseSourcesList(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []aptSource{
		{types: []string{"deb"}, uris: []string{"http://one.invalid/debian"}, suites: []string{"bookworm"}, components: []string{"main", "contrib", "non-free-firmware"}, enabled: true},
		{types: []string{"deb-src"}, uris: []string{"http://one.invalid/debian"}, suites: []string{"bookworm"}, components: []string{"main"}, enabled: true},
		{types: []string{"deb"}, uris: []string{"https://two.invalid/debian"}, suites: []string{"trixie"}, components: []string{"main"}, enabled: true},
		{types: []string{"deb"}, uris: []string{"http://three.invalid/debian"}, suites: []string{"sid"}, components: []string{"main"}, enabled: true},
		{types: []string{"deb"}, uris: []string{"http://four.invalid/debian"}, suites: []string{"bookworm-updates"}, components: []string{"main"}, enabled: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSourcesList =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParsePickMirror(t *testing.T) {
	src := func(uris, suites, comps string, types ...string) aptSource {
		if len(types) == 0 {
			types = []string{"deb"}
		}
		return aptSource{types: types, uris: strings.Fields(uris), suites: strings.Fields(suites), components: strings.Fields(comps), enabled: true}
	}
	disabled := src("http://off.invalid/debian", "bookworm", "main")
	disabled.enabled = false
	tests := []struct {
		name     string
		srcs     []aptSource
		codename string
		want     string // "" for none
	}{
		{"the host's release wins over an earlier one",
			[]aptSource{src("http://sid.invalid/debian", "sid", "main"), src("http://host.invalid/debian", "bookworm", "main")}, "bookworm",
			"http://host.invalid/debian"},
		{"first release when the codename is unknown",
			[]aptSource{src("http://a.invalid/debian", "trixie", "main"), src("http://b.invalid/debian", "bookworm", "main")}, "",
			"http://a.invalid/debian"},
		{"first release when no suite is the codename",
			[]aptSource{src("http://a.invalid/debian", "stable", "main")}, "bookworm",
			"http://a.invalid/debian"},
		{"updates, security and backports are not the main suite",
			[]aptSource{
				src("http://sec.invalid/debian-security", "bookworm-security bookworm/updates", "main"),
				src("http://upd.invalid/debian", "bookworm-updates bookworm-backports", "main"),
				src("http://main.invalid/debian", "bookworm", "main"),
			}, "bookworm", "http://main.invalid/debian"},
		{"needs deb, main and enabled",
			[]aptSource{
				src("http://src.invalid/debian", "bookworm", "main", "deb-src"),
				src("http://third.invalid/repo", "bookworm", "stable"),
				disabled,
				src("http://ok.invalid/debian", "bookworm", "contrib main"),
			}, "bookworm", "http://ok.invalid/debian"},
		{"first fetchable of several URIs",
			[]aptSource{src("cdrom:/x mirror+file:/etc/apt/list.txt https://b.invalid/debian http://c.invalid/debian", "bookworm", "main")}, "bookworm",
			"https://b.invalid/debian"},
		{"file URIs count",
			[]aptSource{src("file:/srv/debian", "bookworm", "main")}, "bookworm", "file:/srv/debian"},
		{"nothing usable",
			[]aptSource{src("cdrom:/x", "bookworm", "main"), src("http://a.invalid/debian", "bookworm-updates", "main")}, "bookworm", ""},
		{"no sources", nil, "bookworm", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, ok := pickMirror(tt.srcs, tt.codename)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("pickMirror = %q, %t; want %q", got, ok, tt.want)
			}
		})
	}
}

// TestParseMirrorFrom reads a whole fake /etc: apt's file order, both
// formats together, os-release, and the environment variable winning.
func TestParseMirrorFrom(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing configured: the error names the variable.
	if _, _, err := mirrorFrom("", root); !errors.Is(err, errNoMirror) || !strings.Contains(err.Error(), MirrorEnv) {
		t.Fatalf("mirrorFrom with no sources = %v, want an error naming %s", err, MirrorEnv)
	}

	write("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n")
	write("etc/apt/sources.list", "# see sources.list.d\ndeb http://old.invalid/debian buster main\n")
	write("etc/apt/sources.list.d/debian.sources", "Types: deb\nURIs: http://host.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
	write("etc/apt/sources.list.d/other.list", "deb http://other.invalid/debian bookworm main\n")
	write("etc/apt/sources.list.d/old.sources.disabled", "Types: deb\nURIs: http://disabled.invalid/debian\nSuites: bookworm\nComponents: main\n")

	url, from, err := mirrorFrom("", root)
	if err != nil {
		t.Fatal(err)
	}
	if url != "http://host.invalid/debian" || from != filepath.Join(root, "etc/apt/sources.list.d/debian.sources") {
		t.Errorf("mirrorFrom = %q from %q", url, from)
	}

	url, from, err = mirrorFrom(" http://env.invalid/debian ", root)
	if err != nil || url != "http://env.invalid/debian" || from != "$"+MirrorEnv {
		t.Errorf("mirrorFrom with %s = %q from %q, %v", MirrorEnv, url, from, err)
	}

	// Without os-release the first release in apt's order wins:
	// sources.list comes first.
	if err := os.Remove(filepath.Join(root, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	if url, _, err := mirrorFrom("", root); err != nil || url != "http://old.invalid/debian" {
		t.Errorf("mirrorFrom without os-release = %q, %v", url, err)
	}

	// A malformed deb822 file is an error, not a silent fallback.
	write("etc/apt/sources.list.d/broken.sources", "Types deb\n")
	if _, _, err := mirrorFrom("", root); err == nil || !strings.Contains(err.Error(), "broken.sources") {
		t.Errorf("mirrorFrom with a broken file = %v", err)
	}
}
