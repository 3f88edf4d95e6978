package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxKeyErrors bounds the unknown-key errors reported at once.
const maxKeyErrors = 20

// checkKeys walks the YAML document against t (a struct type) and reports
// every key the configuration does not know, by its key path
// (clusters.demo.nodes[0].gateway_prot), its line, and the nearest valid
// key when one is close.
func checkKeys(doc *yaml.Node, t reflect.Type) error {
	var errs []error
	var walk func(n *yaml.Node, t reflect.Type, path string)
	walk = func(n *yaml.Node, t reflect.Type, path string) {
		if len(errs) >= maxKeyErrors || n == nil {
			return
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n.Kind == yaml.DocumentNode {
			for _, c := range n.Content {
				walk(c, t, path)
			}
			return
		}
		if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
			return // decodes itself (ByteSize)
		}
		switch t.Kind() {
		case reflect.Struct:
			if n.Kind != yaml.MappingNode {
				return // a type error; the decoder names it
			}
			fields := yamlFields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				ft, ok := fields[k.Value]
				if !ok {
					errs = append(errs, unknownKey(join(path, k.Value), k, sortedKeys(fields)))
					continue
				}
				walk(v, ft, join(path, k.Value))
			}
		case reflect.Map:
			if n.Kind != yaml.MappingNode {
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
			}
		case reflect.Slice, reflect.Array:
			if n.Kind != yaml.SequenceNode {
				return
			}
			for i, c := range n.Content {
				walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(doc, t, "")
	return errors.Join(errs...)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps a struct's YAML keys to their types, as yaml.v3 names
// them (the tag's name, else the lower-cased field name; "-" skipped).
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			maps := yamlFields(f.Type)
			for k, v := range maps {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// unknownKey is the error for an unknown key at path.
func unknownKey(path string, k *yaml.Node, valid []string) error {
	fix := "valid keys here: " + strings.Join(valid, ", ")
	if near := nearest(k.Value, valid); near != "" {
		fix = fmt.Sprintf("did you mean %s? (%s)", near, fix)
	}
	return &Error{Key: path, Problem: fmt.Sprintf("unknown key (line %d)", k.Line), Fix: fix}
}

// nearest is the valid key closest to s by edit distance, if it is close
// enough to be a typo (at most a third of its length, at least 1).
func nearest(s string, valid []string) string {
	best, bestD := "", max(1, len(s)/3)+1
	for _, v := range valid {
		d := editDistance(s, v)
		if len(s) >= 4 && len(v) > len(s) {
			// A typo in the start of a long key (max_chanels).
			d = min(d, editDistance(s, v[:len(s)])+1)
		}
		if d < bestD {
			best, bestD = v, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (short keys).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlLine matches the "line N: ..." of a yaml.v3 type error.
var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// typeErrors rewrites yaml.v3's type errors ("line 7: cannot unmarshal
// !!str `x` into int") to name the key path at that line.
func typeErrors(err error, doc *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var errs []error
	for _, e := range te.Errors {
		m := yamlLine.FindStringSubmatch(e)
		if m == nil {
			errs = append(errs, errors.New(e))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		problem := strings.ReplaceAll(m[2], "!!str", "a string")
		problem = strings.ReplaceAll(problem, "!!int", "a number")
		problem = strings.ReplaceAll(problem, "!!seq", "a list")
		problem = strings.ReplaceAll(problem, "!!map", "a mapping")
		if path := pathAtLine(doc, line); path != "" {
			errs = append(errs, &Error{Key: path, Problem: fmt.Sprintf("%s (line %d)", problem, line), Fix: "see configs/beamgate.example.yaml for this key's form"})
		} else {
			errs = append(errs, errors.New(e))
		}
	}
	return errors.Join(errs...)
}

// pathAtLine is the key path of the value at line in doc, or "".
func pathAtLine(doc *yaml.Node, line int) string {
	var found string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n == nil || found != "" {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := join(path, k.Value)
				if v.Line == line && (v.Kind == yaml.ScalarNode || k.Line == line) {
					found = p
					return
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Line == line && c.Kind == yaml.ScalarNode {
					found = p
					return
				}
				walk(c, p)
			}
		}
	}
	walk(doc, "")
	return found
}
