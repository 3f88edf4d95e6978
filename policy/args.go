package policy

import (
	"fmt"

	"beamgate/gateway/dist/term"

	"go.yaml.in/yaml/v3"
)

// ArgMatcher checks one argument of a call against a rule.
type ArgMatcher interface {
	// Match reports whether arg passes; own tells whether a pid belongs to
	// the engineer's node.
	Match(arg term.Term, own func(term.Pid) bool) bool
	String() string
	atoms() []term.Atom
}

type kindArg string

func (k kindArg) String() string     { return string(k) }
func (k kindArg) atoms() []term.Atom { return nil }

func (k kindArg) Match(arg term.Term, own func(term.Pid) bool) bool {
	switch k {
	case "any":
		return true
	case "pid":
		_, ok := arg.(term.Pid)
		return ok
	case "own_pid":
		p, ok := arg.(term.Pid)
		return ok && own(p)
	case "proc":
		switch arg.(type) {
		case term.Pid, term.Atom:
			return true
		}
	case "atom":
		_, ok := arg.(term.Atom)
		return ok
	case "integer":
		switch arg.(type) {
		case term.Int, term.Big:
			return true
		}
	case "table":
		switch arg.(type) {
		case term.Atom, term.Ref:
			return true
		}
	case "recon_pid":
		// recon_lib:term_to_pid/1 accepts pids, names, "<A.B.C>" strings and
		// {A,B,C} triples; {via, M, N} would call M:whereis_name/1 and
		// {global, N} asks global. Only the plain forms pass.
		switch v := arg.(type) {
		case term.Pid, term.Atom, term.String:
			return true
		case term.Tuple:
			if len(v) != 3 {
				return false
			}
			for _, e := range v {
				if _, ok := e.(term.Int); !ok {
					return false
				}
			}
			return true
		case term.List:
			_, ok := term.ListElems(v)
			if !ok {
				return false
			}
			for _, e := range v.Elems {
				if _, ok := e.(term.Int); !ok {
					return false
				}
			}
			return true
		}
	}
	return false
}

type oneOf []term.Term

func (o oneOf) String() string { return fmt.Sprintf("one_of%v", []term.Term(o)) }
func (o oneOf) atoms() []term.Atom {
	var out []term.Atom
	for _, t := range o {
		if a, ok := t.(term.Atom); ok {
			out = append(out, a)
		}
	}
	return out
}

func (o oneOf) Match(arg term.Term, _ func(term.Pid) bool) bool {
	for _, t := range o {
		if term.Equal(t, arg) {
			return true
		}
	}
	return false
}

type notContaining map[term.Atom]struct{}

func (n notContaining) String() string { return "not_containing" }
func (n notContaining) atoms() []term.Atom {
	out := make([]term.Atom, 0, len(n))
	for a := range n {
		out = append(out, a)
	}
	return out
}

func (n notContaining) Match(arg term.Term, _ func(term.Pid) bool) bool {
	ok := true
	term.Walk(arg, func(t term.Term) bool {
		if a, isAtom := t.(term.Atom); isAtom {
			if _, bad := n[a]; bad {
				ok = false
			}
		}
		return ok
	})
	return ok
}

type intMin int64

func (m intMin) String() string     { return fmt.Sprintf("int_min(%d)", int64(m)) }
func (m intMin) atoms() []term.Atom { return nil }
func (m intMin) Match(arg term.Term, _ func(term.Pid) bool) bool {
	i, ok := arg.(term.Int)
	return ok && int64(i) >= int64(m)
}

func parseArg(n *yaml.Node) (ArgMatcher, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Value {
		case "any", "pid", "own_pid", "proc", "atom", "integer", "table", "recon_pid":
			return kindArg(n.Value), nil
		}
		return nil, fmt.Errorf("%w %q: use any, pid, own_pid, proc, recon_pid, atom, integer, table, {one_of: [...]}, {not_containing: [...]} or {int_min: N}", errArgSpec, n.Value)
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return nil, fmt.Errorf("%w: a check map has exactly one key", errArgSpec)
		}
		key, val := n.Content[0].Value, n.Content[1]
		switch key {
		case "one_of":
			var items []yaml.Node
			if err := val.Decode(&items); err != nil || len(items) == 0 {
				return nil, fmt.Errorf("one_of: give a non-empty list of atoms or integers")
			}
			var o oneOf
			for _, it := range items {
				var i int64
				if it.Tag == "!!int" && it.Decode(&i) == nil {
					o = append(o, term.Int(i))
				} else {
					o = append(o, term.Atom(it.Value))
				}
			}
			return o, nil
		case "not_containing":
			var items []string
			if err := val.Decode(&items); err != nil || len(items) == 0 {
				return nil, fmt.Errorf("not_containing: give a non-empty list of atoms")
			}
			nc := notContaining{}
			for _, s := range items {
				nc[term.Atom(s)] = struct{}{}
			}
			return nc, nil
		case "int_min":
			var i int64
			if err := val.Decode(&i); err != nil {
				return nil, fmt.Errorf("int_min: give an integer")
			}
			return intMin(i), nil
		}
		return nil, fmt.Errorf("%w %q", errArgSpec, key)
	}
	return nil, fmt.Errorf("%w: give a name or a one-key map", errArgSpec)
}
