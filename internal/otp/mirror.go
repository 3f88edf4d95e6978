package otp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
)

// MirrorEnv is the environment variable that names the Debian mirror
// debootstrap downloads the chroots from, as a URL. When it is empty the
// mirror is the one apt on this machine already uses.
const MirrorEnv = "BEAMGATE_DEBIAN_MIRROR"

// errNoMirror says that neither MirrorEnv nor apt's sources name a mirror.
var errNoMirror = errors.New("no Debian mirror configured: set " + MirrorEnv +
	" to the URL of a Debian mirror, or list the host's main Debian suite in apt's sources " +
	"(/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list)")

// mirror returns the Debian mirror for debootstrap and where it was found:
// $BEAMGATE_DEBIAN_MIRROR, else the main Debian suite of apt's sources.
func mirror() (url, from string, err error) {
	return mirrorFrom(os.Getenv(MirrorEnv), "/")
}

// mirrorFrom is mirror with the environment value and the filesystem root
// of apt's configuration given, for tests.
func mirrorFrom(env, root string) (url, from string, err error) {
	if m := strings.TrimSpace(env); m != "" {
		return m, "$" + MirrorEnv, nil
	}
	var all []aptSource
	for _, f := range aptSourceFiles(root) {
		srcs, err := readAptSources(f)
		if err != nil {
			return "", "", fmt.Errorf("reading apt's sources for the Debian mirror (or set %s): %w", MirrorEnv, err)
		}
		all = append(all, srcs...)
	}
	src, uri, ok := pickMirror(all, hostCodename(root))
	if !ok {
		return "", "", errNoMirror
	}
	return uri, src.file, nil
}

// aptSource is one entry of apt's sources: a deb822 stanza, or one line
// of the classic format.
type aptSource struct {
	file       string // where it was read, for messages
	types      []string
	uris       []string
	suites     []string
	components []string
	enabled    bool
}

// aptSourceFiles lists apt's source files under root in the order apt
// reads them: sources.list, then sources.list.d/*.list and *.sources by
// name.
func aptSourceFiles(root string) []string {
	var files []string
	if fi, err := os.Stat(filepath.Join(root, "etc/apt/sources.list")); err == nil && fi.Mode().IsRegular() {
		files = append(files, filepath.Join(root, "etc/apt/sources.list"))
	}
	dir := filepath.Join(root, "etc/apt/sources.list.d")
	entries, _ := os.ReadDir(dir) // a missing directory lists nothing
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(name, ".list") || strings.HasSuffix(name, ".sources")) {
			files = append(files, filepath.Join(dir, name))
		}
	}
	return files
}

// readAptSources parses one source file by its extension.
func readAptSources(path string) ([]aptSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	parse := parseSourcesList
	if strings.HasSuffix(path, ".sources") {
		parse = parseDeb822Sources
	}
	srcs, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range srcs {
		srcs[i].file = path
	}
	return srcs, nil
}

// parseDeb822Sources parses apt's deb822 format (sources.list(5), "DEB822-
// STYLE FORMAT"): stanzas of "Field: value" lines separated by blank
// lines, continuation lines starting with a space or a tab, and comment
// lines starting with '#', which may sit inside a stanza. Field names are
// case-insensitive; values of the fields used here are lists separated by
// white space.
func parseDeb822Sources(r io.Reader) ([]aptSource, error) {
	var (
		out    []aptSource
		fields = map[string]string{}
		last   string // the field continuation lines extend
	)
	flush := func() {
		if len(fields) > 0 {
			out = append(out, aptSource{
				types:      strings.Fields(fields["types"]),
				uris:       strings.Fields(fields["uris"]),
				suites:     strings.Fields(fields["suites"]),
				components: strings.Fields(fields["components"]),
				enabled:    !disabled(fields["enabled"]),
			})
		}
		fields, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation line outside a field", n)
			}
			fields[last] += " " + strings.TrimSpace(line)
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: not a \"Field: value\" line", n)
			}
			last = strings.ToLower(strings.TrimSpace(name))
			fields[last] = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	flush()
	return out, nil
}

// disabled reports whether a deb822 "Enabled:" value turns the stanza
// off, as apt reads booleans.
func disabled(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "no", "false", "off", "disable", "without":
		return true
	}
	return false
}

// parseSourcesList parses apt's classic one-line format:
//
//	deb [ option=value ... ] URI suite [component ...]
//
// '#' starts a comment anywhere on a line. Lines of other types (deb-src)
// are kept with their type, so that the caller can skip them; lines it
// cannot read are skipped, as they name no usable mirror.
func parseSourcesList(r io.Reader) ([]aptSource, error) {
	var out []aptSource
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		typ, rest := line, ""
		if i := strings.IndexFunc(line, unicode.IsSpace); i >= 0 {
			typ, rest = line[:i], strings.TrimSpace(line[i:])
		}
		if strings.HasPrefix(rest, "[") {
			_, after, ok := strings.Cut(rest, "]")
			if !ok {
				continue // unterminated options
			}
			rest = after
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		out = append(out, aptSource{
			types: []string{typ}, uris: f[:1], suites: f[1:2], components: f[2:], enabled: true,
		})
	}
	return out, sc.Err()
}

// pickMirror chooses the mirror of the main Debian suite among srcs: an
// enabled "deb" source with the main component whose suite is a release
// (bookworm, not bookworm-updates, bookworm-security or bookworm/updates).
// A source whose suite is codename (the host's own release) wins; failing
// that, the first release source in apt's order. The URI is the first of
// the source's URIs that debootstrap can fetch from (http, https, file).
func pickMirror(srcs []aptSource, codename string) (aptSource, string, bool) {
	var (
		first    aptSource
		firstURI string
	)
	for _, s := range srcs {
		if !s.enabled || !slices.Contains(s.types, "deb") || !slices.Contains(s.components, "main") {
			continue
		}
		uri := usableURI(s.uris)
		if uri == "" {
			continue
		}
		for _, suite := range s.suites {
			if strings.ContainsAny(suite, "-/") {
				continue // updates, security, backports, or a flat repository
			}
			if codename != "" && suite == codename {
				return s, uri, true
			}
			if firstURI == "" {
				first, firstURI = s, uri
			}
		}
	}
	return first, firstURI, firstURI != ""
}

// usableURI returns the first URI debootstrap can use.
func usableURI(uris []string) string {
	for _, u := range uris {
		scheme, rest, ok := strings.Cut(u, ":")
		if !ok || rest == "" {
			continue
		}
		switch strings.ToLower(scheme) {
		case "http", "https", "file":
			return u
		}
	}
	return ""
}

// hostCodename returns VERSION_CODENAME from root's os-release, or "".
func hostCodename(root string) string {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "VERSION_CODENAME="); ok {
				return strings.Trim(v, `"'`)
			}
		}
		return ""
	}
	return ""
}
