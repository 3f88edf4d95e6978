package relay

import (
	"testing"

	"beamgate/gateway/dist/term"
)

// TestShellInputText: what the group answers a remote shell is recorded
// as readable source: scanned tokens back to text (atoms quoted where
// Erlang needs it), lines as they are, and no record for other answers.
func TestShellInputText(t *testing.T) {
	tok := func(cat string, v term.Term) term.Term { return term.Tuple{term.Atom(cat), term.Int(1), v} }
	sym := func(s string) term.Term { return term.Tuple{term.Atom(s), term.Int(1)} }
	toks := term.MakeList(tok("var", term.Atom("X")), sym("="), tok("atom", term.Atom("a b")), sym(","),
		tok("atom", term.Atom("ok")), sym(","), tok("string", term.String("hi")), sym(","), tok("integer", term.Int(42)), sym("dot"))
	got, ok := inputText(term.Tuple{term.Atom("ok"), toks, term.Int(1)})
	if want := `X = 'a b' , ok , "hi" , 42 .`; !ok || got != want {
		t.Errorf("tokens: %q, want %q", got, want)
	}
	if got, ok := inputText(term.Binary("io:format(\"x\").\n")); !ok || got != "io:format(\"x\").\n" {
		t.Errorf("a line: %q %v", got, ok)
	}
	for _, other := range []term.Term{term.Int(200), term.Atom("ok"), term.Atom("eof")} {
		if got, ok := inputText(other); ok {
			t.Errorf("%v recorded as input %q", other, got)
		}
	}
}
