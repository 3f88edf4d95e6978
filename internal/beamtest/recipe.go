package beamtest

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Helpers that follow a recipe the gateway printed, as an engineer pastes
// it: the lines are run as printed, with only the harness's ssh client
// options (key, no known_hosts, batch mode) added after "ssh".

// RecipeLine returns the first line of recipe that starts with prefix,
// leading spaces trimmed; the test fails without one.
func RecipeLine(t testing.TB, recipe, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(recipe, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("beamtest: recipe has no line starting %q:\n%s", prefix, recipe)
	return ""
}

var homeForward = regexp.MustCompile(`-L (\d+):beamgate:`)

// StartRecipeForward runs the recipe's "ssh -N ..." line against the
// gateway's SSH port with key, until the test ends, and waits until its
// home forward (127.0.0.1:PORT) listens. It returns when ssh started.
func StartRecipeForward(t testing.TB, line string, sshPort int, key string) time.Time {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "ssh" {
		t.Fatalf("beamtest: not an ssh line: %s", line)
	}
	m := homeForward.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("beamtest: no home forward (-L PORT:beamgate:PORT) in %s", line)
	}
	args := append(SSHClientArgs(sshPort, key), f[1:]...)
	start := time.Now()
	cmd := exec.Command("ssh", args...)
	var errb SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	WaitListening(t, "127.0.0.1:"+m[1], exited, errb.String)
	return start
}

// RecipeEnv runs the recipe's printf and export lines in sh with HOME set
// to home and returns the environment they leave (HOME, ERL_*, PATH).
func RecipeEnv(t testing.TB, recipe, home string) []string {
	t.Helper()
	script := RecipeLine(t, recipe, "printf") + "\n" + RecipeLine(t, recipe, "export ") + "\nenv\n"
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("beamtest: recipe shell lines: %v\n%s", err, out)
	}
	var env []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "ERL_") || strings.HasPrefix(l, "HOME=") {
			env = append(env, l)
		}
	}
	return append(env, "PATH="+os.Getenv("PATH"))
}

// RunRecipeErl runs the recipe's erl line as printed (in sh, with env),
// adding -noshell and a last -eval of check (which should end in
// halt()), and returns everything the node printed.
func RunRecipeErl(t testing.TB, ctx context.Context, line string, env []string, dir, check string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "sh", "-c", `eval "$RECIPE -noshell -eval \"\$CHECK\""`)
	cmd.Env = append(append([]string(nil), env...), "RECIPE="+line, "CHECK="+check)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// CheckLines parses "CHECK key value" lines of out, spaces collapsed.
func CheckLines(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "CHECK "); ok {
			k, v, _ := strings.Cut(rest, " ")
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}
