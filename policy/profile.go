package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"beamgate/configs"
	"beamgate/gateway/dist/term"

	"go.yaml.in/yaml/v3"
)

// Mode says what happens to writes a profile does not allow.
type Mode string

const (
	// Enforce refuses writes.
	Enforce Mode = "enforce"
	// Audit lets writes through and flags them in the audit log. Secrets,
	// remote shells and malformed input are refused in both modes.
	Audit Mode = "audit"
)

// ParseMode validates a mode name from configuration. Empty means Enforce.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case Enforce, Audit:
		return Mode(s), nil
	case "":
		return Enforce, nil
	}
	return "", fmt.Errorf("unknown policy mode %q: use enforce or audit", s)
}

// Profile is a compiled policy profile: the rules a role's messages are
// checked against. It is immutable and shared by every session using it.
type Profile struct {
	Name        string
	Description string
	// AtomBudget is how many atoms a session may send that production has
	// never sent and the profile does not name.
	AtomBudget int
	// MaxMonitors caps a session's outstanding monitors on production.
	MaxMonitors int

	calls, spawns, never, writes ruleSet
	vocab                        map[term.Atom]struct{}
}

// Rule is one compiled rule: a set of MFAs with optional argument checks.
type Rule struct {
	Name   string
	Reason string
	// Section is "calls", "spawns", "never" or "writes".
	Section string
	// Args, when non-nil, constrains each argument position.
	Args []ArgMatcher
	// SessionPids makes the pids in the call's result the session's own
	// (appmon_info reports to and is driven by the engineer).
	SessionPids bool
}

type mfaKey struct {
	m, f string
	a    int
}

// ruleSet indexes rules by exact MFA, by module:function/* and by
// *:function/arity and module:* so a lookup is a few map probes.
type ruleSet struct {
	exact   map[mfaKey][]*Rule
	anyAr   map[mfaKey][]*Rule // a = -1
	anyMod  map[mfaKey][]*Rule // m = ""
	modOnly map[string][]*Rule // module:*
}

func (rs *ruleSet) add(spec string, r *Rule) error {
	m, rest, ok := strings.Cut(spec, ":")
	if !ok || m == "" || rest == "" {
		return fmt.Errorf("%q is not module:function/arity", spec)
	}
	if rest == "*" {
		if rs.modOnly == nil {
			rs.modOnly = map[string][]*Rule{}
		}
		rs.modOnly[m] = append(rs.modOnly[m], r)
		return nil
	}
	f, as, ok := strings.Cut(rest, "/")
	if !ok || f == "" || as == "" {
		return fmt.Errorf("%q is not module:function/arity", spec)
	}
	a := -1
	if as != "*" {
		n, err := strconv.Atoi(as)
		if err != nil || n < 0 || n > 255 {
			return fmt.Errorf("%q: arity must be 0..255 or *", spec)
		}
		a = n
	}
	switch {
	case m == "*" && a < 0:
		return fmt.Errorf("%q: a wildcard module needs an exact arity", spec)
	case m == "*":
		if rs.anyMod == nil {
			rs.anyMod = map[mfaKey][]*Rule{}
		}
		k := mfaKey{f: f, a: a}
		rs.anyMod[k] = append(rs.anyMod[k], r)
	case a < 0:
		if rs.anyAr == nil {
			rs.anyAr = map[mfaKey][]*Rule{}
		}
		k := mfaKey{m: m, f: f, a: -1}
		rs.anyAr[k] = append(rs.anyAr[k], r)
	default:
		if rs.exact == nil {
			rs.exact = map[mfaKey][]*Rule{}
		}
		k := mfaKey{m, f, a}
		rs.exact[k] = append(rs.exact[k], r)
	}
	return nil
}

// lookup returns the rules whose MFA pattern matches, most specific first.
// The common case, one matching pattern, returns that pattern's own slice
// without allocating.
func (rs *ruleSet) lookup(m, f string, a int) []*Rule {
	var out []*Rule
	n := 0
	add := func(rules []*Rule) {
		if len(rules) == 0 {
			return
		}
		n++
		if n == 1 {
			out = rules
			return
		}
		if n == 2 {
			out = append(out[:len(out):len(out)], rules...)
			return
		}
		out = append(out, rules...)
	}
	if rs.exact != nil {
		add(rs.exact[mfaKey{m, f, a}])
	}
	if rs.anyAr != nil {
		add(rs.anyAr[mfaKey{m, f, -1}])
	}
	if rs.anyMod != nil {
		add(rs.anyMod[mfaKey{"", f, a}])
	}
	if rs.modOnly != nil {
		add(rs.modOnly[m])
	}
	return out
}

// profileFile is the YAML shape operators write.
type profileFile struct {
	Name        string     `yaml:"name"`
	Description string     `yaml:"description"`
	Extends     string     `yaml:"extends"`
	AtomBudget  *int       `yaml:"atom_budget"`
	MaxMonitors *int       `yaml:"max_monitors"`
	Calls       []ruleFile `yaml:"calls"`
	Spawns      []ruleFile `yaml:"spawns"`
	Never       []ruleFile `yaml:"never"`
	Writes      []ruleFile `yaml:"writes"`
}

type ruleFile struct {
	Rule        string      `yaml:"rule"`
	Reason      string      `yaml:"reason"`
	MFA         []string    `yaml:"mfa"`
	Args        []yaml.Node `yaml:"args"`
	SessionPids bool        `yaml:"session_pids"`
}

// Builtins lists the names of the built-in profiles.
func Builtins() []string {
	ents, _ := fs.ReadDir(configs.Policies, "policy")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return out
}

// Load returns the built-in profile called nameOrPath, or reads a profile
// file when nameOrPath contains a path separator or ends in .yaml/.yml.
func Load(nameOrPath string) (*Profile, error) {
	return load(nameOrPath, 0)
}

func isPath(s string) bool {
	return strings.ContainsRune(s, '/') || strings.HasSuffix(s, ".yaml") || strings.HasSuffix(s, ".yml")
}

func load(nameOrPath string, depth int) (*Profile, error) {
	if depth > 4 {
		return nil, fmt.Errorf("policy %s: extends nests deeper than 4 profiles", nameOrPath)
	}
	var (
		data []byte
		err  error
	)
	if isPath(nameOrPath) {
		data, err = os.ReadFile(nameOrPath)
		if err != nil {
			return nil, fmt.Errorf("policy file %s: %w", nameOrPath, err)
		}
	} else {
		data, err = configs.Policies.ReadFile("policy/" + nameOrPath + ".yaml")
		if err != nil {
			return nil, fmt.Errorf("policy %q: no such built-in profile (built-in: %s); give a file path to use your own", nameOrPath, strings.Join(Builtins(), ", "))
		}
	}
	var pf profileFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("policy %s: %w", nameOrPath, err)
	}
	var p *Profile
	if pf.Extends != "" {
		base := pf.Extends
		if isPath(base) && !filepath.IsAbs(base) && isPath(nameOrPath) {
			base = filepath.Join(filepath.Dir(nameOrPath), base)
		}
		p, err = load(base, depth+1)
		if err != nil {
			return nil, fmt.Errorf("policy %s: extends: %w", nameOrPath, err)
		}
		p.Name = ""
	} else {
		p = &Profile{AtomBudget: 64, MaxMonitors: 2000, vocab: map[term.Atom]struct{}{}}
	}
	if err := p.merge(&pf, nameOrPath); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Profile) merge(pf *profileFile, src string) error {
	if pf.Name != "" {
		p.Name = pf.Name
	}
	if p.Name == "" {
		p.Name = strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))
	}
	if pf.Description != "" {
		p.Description = pf.Description
	}
	if pf.AtomBudget != nil {
		if *pf.AtomBudget < 0 || *pf.AtomBudget > 10000 {
			return fmt.Errorf("policy %s: atom_budget must be 0..10000", src)
		}
		p.AtomBudget = *pf.AtomBudget
	}
	if pf.MaxMonitors != nil {
		if *pf.MaxMonitors < 0 || *pf.MaxMonitors > 1000000 {
			return fmt.Errorf("policy %s: max_monitors must be 0..1000000", src)
		}
		p.MaxMonitors = *pf.MaxMonitors
	}
	sections := []struct {
		name  string
		rules []ruleFile
		set   *ruleSet
	}{
		{"calls", pf.Calls, &p.calls},
		{"spawns", pf.Spawns, &p.spawns},
		{"never", pf.Never, &p.never},
		{"writes", pf.Writes, &p.writes},
	}
	for _, s := range sections {
		for i, rf := range s.rules {
			where := fmt.Sprintf("policy %s: %s[%d]", src, s.name, i)
			if rf.Rule == "" {
				return fmt.Errorf("%s: rule: missing; give the rule a name for the audit log", where)
			}
			if len(rf.MFA) == 0 {
				return fmt.Errorf("%s (%s): mfa: missing; list module:function/arity entries", where, rf.Rule)
			}
			r := &Rule{Name: rf.Rule, Reason: rf.Reason, Section: s.name, SessionPids: rf.SessionPids}
			if rf.Args != nil {
				r.Args = make([]ArgMatcher, len(rf.Args))
				for j := range rf.Args {
					m, err := parseArg(&rf.Args[j])
					if err != nil {
						return fmt.Errorf("%s (%s): args[%d]: %w", where, rf.Rule, j, err)
					}
					r.Args[j] = m
					for _, a := range m.atoms() {
						p.vocab[a] = struct{}{}
					}
				}
			}
			for _, spec := range rf.MFA {
				if err := s.set.add(spec, r); err != nil {
					return fmt.Errorf("%s (%s): mfa: %w", where, rf.Rule, err)
				}
				m, rest, _ := strings.Cut(spec, ":")
				f, _, _ := strings.Cut(rest, "/")
				for _, a := range []string{m, f} {
					if a != "*" && a != "" {
						p.vocab[term.Atom(a)] = struct{}{}
					}
				}
			}
		}
	}
	return nil
}

var errArgSpec = errors.New("unknown argument check")
