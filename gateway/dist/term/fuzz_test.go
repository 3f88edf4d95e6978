package term

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"
)

// fuzzLimits keep single fuzz executions cheap; the bounds logic is the
// same as with the defaults.
var fuzzLimits = &Limits{MaxDepth: 40, MaxElements: 1 << 14, MaxBinary: 1 << 16, MaxBigBytes: 64}

func addSeeds(f *testing.F) {
	for _, in := range hostileInputs() {
		f.Add(in)
	}
	f.Add(execCallArgs())
}

// FuzzDecode: Decode never panics; what it accepts re-encodes, decodes to
// an Equal term, renders within its bound, and Skip accepts the same bytes
// with the same length.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		v, n, err := Decode(in, fuzzLimits)
		sn, serr := Skip(in, fuzzLimits, nil)
		if (err == nil) != (serr == nil) || n != sn {
			t.Fatalf("Decode n=%d err=%v, Skip n=%d err=%v", n, err, sn, serr)
		}
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(serr, fe.Kind) {
				t.Fatalf("Decode error %v, Skip error %v", err, serr)
			}
			return
		}
		enc, err := Append(nil, v)
		if err != nil {
			t.Fatalf("Append(%s): %v", Format(v, 300), err)
		}
		back, err := Unmarshal(enc, fuzzLimits)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", Format(v, 300), err)
		}
		if !Equal(back, v) || !Equal(v, back) {
			t.Fatalf("round trip: %s became %s", Format(v, 300), Format(back, 300))
		}
		if hashTerm(back) != hashTerm(v) {
			t.Fatalf("hash of %s changed in the round trip", Format(v, 300))
		}
		if s := Format(v, 100); len(s) > 100 || !utf8.ValidString(s) {
			t.Fatalf("Format gave %q", s)
		}
		Walk(v, func(Term) bool { return true })
	})
}

// FuzzSkip: the atoms Skip reports are, in order, the atoms of the term
// Decode builds, and each is a valid atom.
func FuzzSkip(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var got []Atom
		n, err := Skip(in, fuzzLimits, func(a Atom) { got = append(got, a) })
		if err != nil {
			return
		}
		v, dn, err := Decode(in, fuzzLimits)
		if err != nil || dn != n {
			t.Fatalf("Skip accepted %d bytes, Decode n=%d err=%v", n, dn, err)
		}
		if want := termAtoms(v, nil); !slices.Equal(got, want) {
			t.Fatalf("Skip reported %q, term holds %q", got, want)
		}
		for _, a := range got {
			if !utf8.ValidString(string(a)) || utf8.RuneCountInString(string(a)) > 255 {
				t.Fatalf("bad atom %q", a)
			}
		}
	})
}

// termAtoms lists every atom of t in wire order, including the nodes of
// identifiers and the names in funs and exports.
func termAtoms(t Term, out []Atom) []Atom {
	switch x := t.(type) {
	case Atom:
		out = append(out, x)
	case List:
		for _, e := range x.Elems {
			out = termAtoms(e, out)
		}
		out = termAtoms(x.Tail, out)
	case Tuple:
		for _, e := range x {
			out = termAtoms(e, out)
		}
	case Map:
		for _, p := range x {
			out = termAtoms(p.Value, termAtoms(p.Key, out))
		}
	case Pid:
		out = append(out, x.Node)
	case Port:
		out = append(out, x.Node)
	case Ref:
		out = append(out, x.Node)
	case Fun:
		out = append(out, x.Module, x.Pid.Node)
		for _, e := range x.Free {
			out = termAtoms(e, out)
		}
	case Export:
		out = append(out, x.Module, x.Function)
	}
	return out
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/{FuzzDecode,FuzzSkip}
// from real term_to_binary output and the hostile inputs. Run with
// TERM_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("TERM_WRITE_CORPUS") == "" {
		t.Skip("set TERM_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	erl := startErl(t)
	seeds := hostileInputs()
	for _, enc := range erl.encodings(erlTerms) {
		if len(enc) <= 4096 {
			seeds = append(seeds, enc)
		}
	}
	for _, target := range []string{"FuzzDecode", "FuzzSkip"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range seeds {
			sum := sha256.Sum256(s)
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8])), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("wrote %d seeds per target", len(seeds))
}
