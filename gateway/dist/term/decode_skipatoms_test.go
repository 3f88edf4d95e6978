package term

import (
	"testing"
)

func TestSkipAtomsMatchesSkip(t *testing.T) {
	src, err := Append(nil, Tuple{Atom("a"), MakeList(Atom("b"), Pid{Node: "n@h", ID: 1}), Map{{Key: Atom("k"), Value: Atom("v")}}, Atom("é")})
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	n1, err1 := Skip(src, nil, func(a Atom) { want = append(want, string(a)) })
	n2, err2 := SkipAtoms(src, nil, func(b []byte) { got = append(got, string(b)) })
	if err1 != nil || err2 != nil || n1 != n2 || len(want) != len(got) {
		t.Fatalf("Skip %d %v %v, SkipAtoms %d %v %v", n1, err1, want, n2, err2, got)
	}
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("atom %d: %q vs %q", i, want[i], got[i])
		}
	}
}
