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

// TestShellOutputText: the Erlang shell prints results as {requests,
// [put_chars ...]}; each form is recorded as its text.
func TestShellOutputText(t *testing.T) {
	pc := func(s string) term.Term {
		return term.Tuple{term.Atom("put_chars"), term.Atom("unicode"), term.Binary(s)}
	}
	if got := putChars(term.Tuple{term.Atom("requests"), term.MakeList(pc("42"), pc("\n"))}); got != "42\n" {
		t.Errorf("requests: %q", got)
	}
	if got := putChars(term.Tuple{term.Atom("put_chars"), term.Binary("hi")}); got != "hi" {
		t.Errorf("put_chars/1: %q", got)
	}
	if got := putChars(term.Tuple{term.Atom("get_line"), term.Atom("unicode"), term.Binary("> ")}); got != "" {
		t.Errorf("a prompt recorded as output: %q", got)
	}
}
