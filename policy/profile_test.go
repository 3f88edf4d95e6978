package policy

import (
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"

	"go.yaml.in/yaml/v3"
)

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": Enforce, "enforce": Enforce, "audit": Audit} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, m, err)
		}
	}
	if _, err := ParseMode("permissive"); err == nil || !strings.Contains(err.Error(), "enforce or audit") {
		t.Errorf("ParseMode(permissive) error = %v", err)
	}
}

func TestBuiltins(t *testing.T) {
	if b := Builtins(); !slices.Contains(b, "readonly") {
		t.Fatalf("Builtins() = %v", b)
	}
	p := mustLoad(t, "readonly")
	if p.Name != "readonly" || p.Description == "" || p.AtomBudget != 64 || p.MaxMonitors != 2000 {
		t.Fatalf("readonly = %q %q %d %d", p.Name, p.Description, p.AtomBudget, p.MaxMonitors)
	}
}

func TestProfileErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ body, want string }{
		{"name: x\natom_budget: 10001\n", "atom_budget must be 0..10000"},
		{"name: x\natom_budget: -1\n", "atom_budget must be 0..10000"},
		{"name: x\nmax_monitors: -1\n", "max_monitors must be 0..1000000"},
		{"name: x\nnever:\n  - rule: r\n", "mfa: missing"},
		{"name: x\nwrites:\n  - rule: r\n    mfa: [erlang:node]\n", "not module:function/arity"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [\":node/0\"]\n", "not module:function/arity"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [erlang:node/x]\n", "arity must be 0..255 or *"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [erlang:node/256]\n", "arity must be 0..255 or *"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [\"*:node/*\"]\n", "a wildcard module needs an exact arity"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [a:b/2]\n    args: [[pid, atom]]\n", "a name or a one-key map"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [a:b/1]\n    args: [{one_of: [a], int_min: 1}]\n", "exactly one key"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [a:b/1]\n    args: [{one_of: []}]\n", "one_of: give a non-empty list"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [a:b/1]\n    args: [{one_of: a}]\n", "one_of: give a non-empty list"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [a:b/1]\n    args: [{not_containing: []}]\n", "not_containing: give a non-empty list"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [a:b/1]\n    args: [{int_min: x}]\n", "int_min: give an integer"},
		{"name: x\ncalls:\n  - rule: r\n    mfa: [a:b/1]\n    args: [{max: 1}]\n", `unknown argument check "max"`},
		{"name: x\ncalls: {rule: r}\n", "cannot unmarshal"},
		{"name: x\nextends: nosuch\n", "extends: policy \"nosuch\""},
		{"name: x\nextends: loop.yaml\n", "extends nests deeper than 4 profiles"},
	}
	if err := writeFile(filepath.Join(dir, "loop.yaml"), "extends: loop.yaml\n"); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		path := filepath.Join(dir, "p.yaml")
		if err := writeFile(path, c.body); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%q) error = %v, want it to mention %q", c.body, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.yml")); err == nil || !strings.Contains(err.Error(), "policy file") {
		t.Errorf("missing file error = %v", err)
	}
}

func TestProfileExtendsRelativePath(t *testing.T) {
	dir := t.TempDir()
	base := "description: base\natom_budget: 3\nmax_monitors: 5\ncalls:\n  - rule: base.seq\n    mfa: [lists:seq/2]\n    args: [{one_of: [1, one]}, {int_min: 10}]\n"
	child := "extends: base.yaml\ncalls:\n  - rule: child.reverse\n    reason: child's own\n    mfa: [\"lists:reverse/*\"]\n    args: [{not_containing: [secret]}]\n"
	if err := writeFile(filepath.Join(dir, "base.yaml"), base); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "child.yaml"), child); err != nil {
		t.Fatal(err)
	}
	p, err := Load(filepath.Join(dir, "child.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The name comes from the file; limits and description are inherited.
	if p.Name != "child" || p.Description != "base" || p.AtomBudget != 3 || p.MaxMonitors != 5 {
		t.Fatalf("profile = %q %q %d %d", p.Name, p.Description, p.AtomBudget, p.MaxMonitors)
	}
	s := NewSession(SessionConfig{Profile: p, Engineer: eng, EngineerCreation: 7, Production: prod, ProductionCreation: 3})
	expect(t, s, erpcCall("lists", "seq", term.Int(1), term.Int(10)), Allow, "base.seq")
	expect(t, s, erpcCall("lists", "seq", term.Atom("one"), term.Int(20)), Allow, "base.seq")
	d := expect(t, s, erpcCall("lists", "seq", term.Int(2), term.Int(20)), Deny, "base.seq")
	if d.Reason != "these arguments are not allowed" {
		t.Fatalf("reason = %q", d.Reason)
	}
	expect(t, s, erpcCall("lists", "seq", term.Int(1), term.Int(9)), Deny, "base.seq")
	expect(t, s, erpcCall("lists", "reverse", term.MakeList(term.Atom("ok"))), Allow, "child.reverse")
	expect(t, s, erpcCall("lists", "reverse", term.MakeList(term.Atom("secret")), term.Nil{}), Deny, "child.reverse")
	// Profile atoms spend no budget: "one" and "secret" are the profile's.
	if len(s.spent) != 0 {
		t.Fatalf("spent = %v", s.spent)
	}
	// The built-in rules still apply.
	expect(t, s, erpcCall("erlang", "get_cookie"), Deny, "secrets")
}

func TestRuleSetLookup(t *testing.T) {
	rs := &ruleSet{}
	if got := rs.lookup("m", "f", 1); got != nil {
		t.Fatalf("empty set: %v", got)
	}
	for _, spec := range []string{"m:*", "*:f/1", "m:f/*", "m:f/1"} {
		if err := rs.add(spec, &Rule{Name: spec}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, r := range rs.lookup("m", "f", 1) {
		names = append(names, r.Name)
	}
	if want := []string{"m:f/1", "m:f/*", "*:f/1", "m:*"}; !slices.Equal(names, want) {
		t.Fatalf("lookup = %v, want %v (most specific first)", names, want)
	}
	if got := rs.lookup("m", "g", 0); len(got) != 1 || got[0].Name != "m:*" {
		t.Fatalf("lookup m:g/0 = %v", got)
	}
	if got := rs.lookup("n", "f", 2); len(got) != 0 {
		t.Fatalf("lookup n:f/2 = %v", got)
	}
	// Checks beyond the call's arguments (module:function/*) are skipped.
	r := &Rule{Args: []ArgMatcher{kindArg("atom"), kindArg("atom")}}
	if !r.argsMatch([]term.Term{term.Atom("a")}, nil) || r.argsMatch([]term.Term{term.Int(1)}, nil) {
		t.Fatal("argsMatch")
	}
}

func TestArgMatchers(t *testing.T) {
	own := func(p term.Pid) bool { return p.Node == eng }
	big := term.Big{V: new(big.Int).Lsh(big.NewInt(1), 70)}
	cases := []struct {
		m    ArgMatcher
		arg  term.Term
		want bool
	}{
		{kindArg("any"), term.Nil{}, true},
		{kindArg("pid"), prodPid, true},
		{kindArg("pid"), term.Atom("rex"), false},
		{kindArg("own_pid"), engPid, true},
		{kindArg("own_pid"), prodPid, false},
		{kindArg("own_pid"), term.Atom("rex"), false},
		{kindArg("proc"), prodPid, true},
		{kindArg("proc"), term.Atom("rex"), true},
		{kindArg("proc"), term.Int(1), false},
		{kindArg("atom"), term.Atom("a"), true},
		{kindArg("atom"), term.String("a"), false},
		{kindArg("integer"), term.Int(-1), true},
		{kindArg("integer"), big, true},
		{kindArg("integer"), term.Float(1), false},
		{kindArg("table"), term.Atom("t"), true},
		{kindArg("table"), reqRef, true},
		{kindArg("table"), term.Int(1), false},
		{kindArg("recon_pid"), prodPid, true},
		{kindArg("recon_pid"), term.Atom("rex"), true},
		{kindArg("recon_pid"), term.String("<0.1.0>"), true},
		{kindArg("recon_pid"), term.Tuple{term.Int(0), term.Int(1), term.Int(0)}, true},
		{kindArg("recon_pid"), term.Tuple{term.Int(0), term.Int(1)}, false},
		{kindArg("recon_pid"), term.Tuple{term.Atom("global"), term.Atom("n"), term.Int(0)}, false},
		{kindArg("recon_pid"), term.Tuple{term.Atom("via"), term.Atom("m"), term.Atom("n")}, false},
		{kindArg("recon_pid"), term.MakeList(term.Int(60), term.Int(62)), true},
		{kindArg("recon_pid"), term.MakeList(term.Int(60), term.Atom("x")), false},
		{kindArg("recon_pid"), term.List{Elems: []term.Term{term.Int(60)}, Tail: term.Int(62)}, false},
		{kindArg("recon_pid"), term.Binary("<0.1.0>"), false},
		{kindArg("bogus"), term.Atom("a"), false},
		{oneOf{term.Atom("a"), term.Int(1)}, term.Int(1), true},
		{oneOf{term.Atom("a"), term.Int(1)}, term.Atom("b"), false},
		{notContaining{"messages": {}}, term.MakeList(term.Atom("memory"), term.Tuple{term.Atom("messages")}), false},
		{notContaining{"messages": {}}, term.MakeList(term.Atom("memory")), true},
		{intMin(100), term.Int(100), true},
		{intMin(100), term.Int(99), false},
		{intMin(100), big, false},
	}
	for _, c := range cases {
		if got := c.m.Match(c.arg, own); got != c.want {
			t.Errorf("%s.Match(%s) = %t", c.m, term.Format(c.arg, 80), got)
		}
	}
	names := map[string]ArgMatcher{
		"pid":            kindArg("pid"),
		"one_of[a 1]":    oneOf{term.Atom("a"), term.Int(1)},
		"not_containing": notContaining{"x": {}},
		"int_min(100)":   intMin(100),
	}
	for want, m := range names {
		if m.String() != want {
			t.Errorf("String() = %q, want %q", m.String(), want)
		}
	}
	if a := (oneOf{term.Atom("a"), term.Int(1)}).atoms(); !slices.Equal(a, []term.Atom{"a"}) {
		t.Errorf("oneOf atoms = %v", a)
	}
}

func TestParseArg(t *testing.T) {
	parse := func(src string) (ArgMatcher, error) {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(src), &n); err != nil {
			t.Fatal(err)
		}
		return parseArg(n.Content[0])
	}
	for _, k := range []string{"any", "pid", "own_pid", "proc", "atom", "integer", "table", "recon_pid"} {
		if m, err := parse(k); err != nil || m != kindArg(k) {
			t.Errorf("parseArg(%s) = %v, %v", k, m, err)
		}
	}
	m, err := parse("{one_of: [1, two, '3']}")
	if err != nil || !slices.EqualFunc(m.(oneOf), []term.Term{term.Int(1), term.Atom("two"), term.Atom("3")}, term.Equal) {
		t.Errorf("one_of = %v, %v", m, err)
	}
	if m, err := parse("{int_min: -5}"); err != nil || m != intMin(-5) {
		t.Errorf("int_min = %v, %v", m, err)
	}
	if m, err := parse("{not_containing: [a, b]}"); err != nil || len(m.(notContaining)) != 2 || len(m.atoms()) != 2 {
		t.Errorf("not_containing = %v, %v", m, err)
	}
	if _, err := parse("bogus"); err == nil || !strings.Contains(err.Error(), "use any, pid") {
		t.Errorf("bogus: %v", err)
	}
}

func TestDecisionHelpers(t *testing.T) {
	for v, want := range map[Verdict]string{Deny: "deny", Allow: "allow", AllowWrite: "allow_write", 9: "deny"} {
		if v.String() != want {
			t.Errorf("%d.String() = %q", v, v.String())
		}
	}
	s := newSession(t, Audit)
	d := s.Evaluate(erpcCall("ets", "insert", term.Atom("t"), term.Tuple{term.Int(1)}))
	if !d.Write() || d.Args() != "[t,{1}]" {
		t.Fatalf("write %t, args %q", d.Write(), d.Args())
	}
	if d := s.Evaluate(ctl(&dist.DemonitorP{From: engPid, To: term.Atom("rex"), Ref: reqRef})); d.Write() || d.Args() != "" {
		t.Fatalf("a message without arguments: write %t, args %q", d.Write(), d.Args())
	}
	if r := DeniedReason(term.Atom("x"), "", "because"); !term.Equal(r, term.Tuple{term.Atom("beamgate_denied"), term.Atom("x"), term.Binary("because")}) {
		t.Fatalf("DeniedReason = %s", term.Format(r, 100))
	}
}

func TestRenderRedacts(t *testing.T) {
	long := strings.Repeat("x", 65)
	many := make([]term.Term, 40)
	for i := range many {
		many[i] = term.Int(i)
	}
	deep := term.Term(term.Atom("bottom"))
	for range 12 {
		deep = term.Tuple{deep}
	}
	cases := []struct {
		in   term.Term
		want string
	}{
		{term.Binary(long), "'<<65 bytes>>'"},
		{term.Binary("short"), `<<"short">>`},
		{term.String(long), `'"65 chars"'`},
		{term.String("short"), `"short"`},
		{term.BitBinary{Data: []byte{1, 2}, Bits: 3}, "'<<2 bytes>>'"},
		{term.Tuple(many), "{0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,'...'}"},
		{term.MakeList(many...), "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,'...']"},
		{term.List{Elems: []term.Term{term.Binary(long)}, Tail: term.Binary(long)}, "['<<65 bytes>>'|'<<65 bytes>>']"},
		{deep, "{{{{{{{{{'...'}}}}}}}}}"},
	}
	for _, c := range cases {
		if got := render(c.in); got != c.want {
			t.Errorf("render(%s) = %s, want %s", term.Format(c.in, 40), got, c.want)
		}
	}
	if got := render(term.MakeList(term.Binary(strings.Repeat("y", 4096)))); len(got) > renderMax {
		t.Errorf("render is %d bytes, over %d", len(got), renderMax)
	}
}
