package gateway

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"beamgate/gateway/config"
	"beamgate/internal/beamtest"
)

// recipeConfig is a configuration with a short-name cluster on two hosts
// (the same short name on both) and a long-name cluster.
const recipeConfig = `
listen: 127.0.0.1:2222
host_key: ./k
audit: {path: ./a.jsonl}
cookies: {backend: file, file: ./c.yaml}
clusters:
  prismatic:
    nodes:
      - {name: app@prod-01, dial: 10.0.0.1, gateway_port: 4370}
      - {name: worker@prod-01, dial: 10.0.0.1, gateway_port: 4371}
      - {name: app@prod-02, dial: 10.0.0.2, gateway_port: 4370}
  billing:
    nodes:
      - {name: bill@bill-01.example.com, dial: 10.0.1.1, gateway_port: 4370}
users:
  alice: {keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKAd20RvmvISazwA72prLYb5SoFzxyCCaxh2UCkw0X12 alice@laptop"], roles: [r]}
roles:
  r: {clusters: [prismatic, billing], policy: readonly, mode: enforce}
`

func recipeText(t *testing.T, cluster string) string {
	t.Helper()
	cfg, err := config.Parse([]byte(recipeConfig), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, ok := cfg.Layout(cluster)
	if !ok {
		t.Fatalf("no layout for %s", cluster)
	}
	var out bytes.Buffer
	writeRecipe(&out, recipe{User: "alice", SSHHost: "bastion", SSHPort: "2222", Cookie: "COOKIE", Layout: l})
	return out.String()
}

func recipeLine(t *testing.T, text, prefix string) string {
	return beamtest.RecipeLine(t, text, prefix)
}

// TestRecipeLayout: one ssh -N carries every forward; each host has its
// own loopback address; two clusters use distinct addresses and epmd
// ports, so their recipes run side by side.
func TestRecipeLayout(t *testing.T) {
	p := recipeText(t, "prismatic")
	want := "ssh -N -o ExitOnForwardFailure=yes -L 14370:beamgate:14370 " +
		"-L 127.77.2.1:14370:prod-01:14370 -L 127.77.2.1:4370:prod-01:4370 -L 127.77.2.1:4371:prod-01:4371 " +
		"-L 127.77.2.2:14370:prod-02:14370 -L 127.77.2.2:4370:prod-02:4370 alice@bastion -p 2222"
	if got := recipeLine(t, p, "ssh -N"); got != want {
		t.Errorf("ssh line:\n got %s\nwant %s", got, want)
	}
	for _, w := range []string{
		"for a in 127.77.2.1 127.77.2.2; do sudo ifconfig lo0 alias $a up; done",
		"export ERL_EPMD_PORT=14370 ERL_INETRC=$HOME/.beamgate-prismatic.inetrc",
		"erl -sname alice_erl -connect_all false -setcookie COOKIE -eval",
		`iex --sname alice_iex --cookie COOKIE --erl "-connect_all false" -e`,
		"'app@prod-01', 'worker@prod-01', 'app@prod-02'",
		`:"app@prod-01", :"worker@prod-01", :"app@prod-02"`,
	} {
		if !strings.Contains(p, w) {
			t.Errorf("prismatic recipe lacks %q:\n%s", w, p)
		}
	}
	if strings.Contains(p, "-hidden") || strings.Contains(p, "bill") {
		t.Errorf("prismatic recipe:\n%s", p)
	}

	b := recipeText(t, "billing")
	if got := recipeLine(t, b, "ssh -N"); got != "ssh -N -o ExitOnForwardFailure=yes -L 14369:beamgate:14369 -L 127.77.1.1:14369:bill-01.example.com:14369 -L 127.77.1.1:4370:bill-01.example.com:4370 alice@bastion -p 2222" {
		t.Errorf("billing ssh line: %s", got)
	}
	for _, w := range []string{"erl -name alice_erl@127.0.0.1 -connect_all false", "iex --name alice_iex@127.0.0.1 --cookie", "ERL_EPMD_PORT=14369 "} {
		if !strings.Contains(b, w) {
			t.Errorf("billing recipe lacks %q:\n%s", w, b)
		}
	}
	if strings.Contains(b, "sname") {
		t.Errorf("long-name recipe uses short names:\n%s", b)
	}
	// No local address:port is bound by both recipes.
	binds := func(line string) []string {
		var out []string
		f := strings.Fields(line)
		for i, w := range f {
			if w == "-L" {
				parts := strings.Split(f[i+1], ":")
				if len(parts) == 3 {
					parts = append([]string{"127.0.0.1"}, parts...)
				}
				out = append(out, parts[0]+":"+parts[1])
			}
		}
		return out
	}
	pb, bb := binds(recipeLine(t, p, "ssh -N")), binds(recipeLine(t, b, "ssh -N"))
	for _, a := range pb {
		if slices.Contains(bb, a) {
			t.Errorf("both recipes bind %s", a)
		}
	}
}

// TestRecipeInetrc runs the recipe's printf line as a shell would and
// checks the file it writes.
func TestRecipeInetrc(t *testing.T) {
	line := recipeLine(t, recipeText(t, "prismatic"), "printf")
	home := t.TempDir()
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", line, err, out)
	}
	got, err := os.ReadFile(filepath.Join(home, ".beamgate-prismatic.inetrc"))
	if err != nil {
		t.Fatal(err)
	}
	want := "{host, {127,77,2,1}, [\"prod-01\"]}.\n{host, {127,77,2,2}, [\"prod-02\"]}.\n{lookup, [file, native]}.\n"
	if string(got) != want {
		t.Errorf("inetrc = %q, want %q", got, want)
	}
}
