package gateway

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// erlEval runs a non-distributed erl that evaluates expr and prints the
// result, with env added; bounded.
func erlEval(t *testing.T, env []string, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "erl", "-noshell", "-eval",
		fmt.Sprintf(`io:format("~p~n", [%s]), halt().`, expr))
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("erl %s: %v\n%s", expr, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestSSHEpmdFaceWithErl: ssh -N -L 14369:prod-01:4369 and a real erl with
// ERL_EPMD_PORT pointing at it gets the gateway port of the node, and
// nothing for a node alice may not reach.
func TestSSHEpmdFaceWithErl(t *testing.T) {
	beamtest.RequireErl(t)
	ep := beamtest.FreePort(t)
	e := startGateway(t, envOptions{extraYAML: fmt.Sprintf("engineer_epmd_port: %d\n", ep)})
	e.forward("alice", e.aliceK, []string{fmt.Sprintf("%d:prod-01:4369", ep)}, ep)
	env := []string{"ERL_EPMD_PORT=" + strconv.Itoa(ep)}
	if got := erlEval(t, env, `erl_epmd:port_please("prismatic", {127,0,0,1})`); got != "{port,4370,6}" {
		t.Errorf("port_please(prismatic) = %s, want {port,4370,6}", got)
	}
	if got := erlEval(t, env, `erl_epmd:port_please("billing", {127,0,0,1})`); got != "noport" {
		t.Errorf("port_please(billing) = %s, want noport", got)
	}
	if got := erlEval(t, env, `erl_epmd:names({127,0,0,1})`); got != `{ok,[{"prismatic",4370}]}` {
		t.Errorf("names = %s", got)
	}
	e.waitAudit(`"event":"epmd"`, `"alive":"prismatic"`, `"alive":"billing"`, `"reason":"not_found: no node named billing that you may reach on prod-01"`)
}
