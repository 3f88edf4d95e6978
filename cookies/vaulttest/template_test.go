package vaulttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/hashicorp/vault/api"
)

// The Vault Agent templates in deploy/vault render the cookie from the
// path and field beamgate writes. Vault Agent uses consul-template, whose
// language is text/template with a "secret" function; here "secret" reads
// the real Vault (as the node policy) the way the agent does.
func TestNodeCookieTemplates(t *testing.T) {
	tv := startVault(t)
	tv.putCookie(t, "prismatic", "RENDEREDCOOKIE")
	hcl, err := os.ReadFile(filepath.Join("..", "..", "deploy", "vault", "beamgate-node.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tv.root.Sys().PutPolicy("beamgate-node", string(hcl)); err != nil {
		t.Fatal(err)
	}
	tok, err := tv.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"beamgate-node"}})
	if err != nil {
		t.Fatal(err)
	}
	node, err := tv.root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	node.SetToken(tok.Auth.ClientToken)
	funcs := template.FuncMap{"secret": func(path string) (*api.Secret, error) { return node.Logical().Read(path) }}
	for file, want := range map[string]string{
		"node-cookie.ctmpl":  "RENDEREDCOOKIE",
		"node-vm-args.ctmpl": "\n-setcookie RENDEREDCOOKIE\n",
	} {
		src, err := os.ReadFile(filepath.Join("..", "..", "deploy", "vault", file))
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := template.New(file).Funcs(funcs).Parse(string(src))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var out strings.Builder
		if err := tmpl.Execute(&out, nil); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if out.String() != want {
			t.Errorf("%s rendered %q, want %q", file, out.String(), want)
		}
	}
	// The node policy reads nothing else.
	if _, err := node.Logical().Read("secret/data/beamgate/revocations"); err == nil {
		t.Error("node policy can read the revocation list")
	}
}
