package vaulttest

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/dist/client"
	"beamgate/gateway/rotate"
	"beamgate/internal/beamtest"
)

const (
	oldCookie = "OLDCLUSTERCOOKIE"
	nodeHost  = "127.0.0.2"
)

// cluster is two production nodes on one host, connected to each other,
// plus a stray node registered in the same epmd but not configured.
type cluster struct {
	nodes    []*beamtest.Production
	epmdPort int
	rotate   []rotate.Node
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real BEAM nodes")
	}
	port := beamtest.StartEpmd(t)
	c := &cluster{epmdPort: port}
	for _, name := range []string{"prod1", "prod2"} {
		full := name + "@" + nodeHost
		c.nodes = append(c.nodes, beamtest.StartProduction(t, beamtest.Options{Name: full, LongNames: true,
			Cookie: oldCookie, BindIP: nodeHost, EpmdPort: port}))
		c.rotate = append(c.rotate, rotate.Node{Name: full, Dial: nodeHost + ":" + strconv.Itoa(port)})
	}
	beamtest.Start(t, beamtest.Options{Name: "stray@" + nodeHost, LongNames: true, Cookie: oldCookie,
		BindIP: nodeHost, EpmdPort: port})

	a, b := c.nodes[0], c.nodes[1]
	if got := a.Eval(t, "net_kernel:connect_node('"+b.Name+"')."); got != "true" {
		t.Fatalf("connect prod1 to prod2: %s", got)
	}
	// A watcher on each node records every nodeup/nodedown from now on.
	for _, n := range c.nodes {
		n.Eval(t, `Parent = self(), spawn(fun() -> register(nd_watch, self()), ok = net_kernel:monitor_nodes(true),
			Parent ! nd_ready,
			L = fun L(Acc) -> receive {get, P} -> P ! {nd, lists:reverse(Acc)}, L(Acc); E -> L([E | Acc]) end end,
			L([]) end), receive nd_ready -> ok after 5000 -> timeout end.`)
	}
	return c
}

// events returns the node monitor events a node saw since startCluster.
func events(t *testing.T, n *beamtest.Production) string {
	return n.Eval(t, "nd_watch ! {get, self()}, receive {nd, A} -> A after 5000 -> timeout end.")
}

// checkConnected asserts the nodes are still connected, with no nodeup or
// nodedown since the cluster formed.
func (c *cluster) checkConnected(t *testing.T) {
	t.Helper()
	for i, n := range c.nodes {
		other := c.nodes[1-i].Name
		if got := n.Eval(t, "nodes()."); got != "['"+other+"']" {
			t.Errorf("%s: nodes() = %s, want [%s]", n.Name, got, other)
		}
		if got := events(t, n); got != "[]" {
			t.Errorf("%s saw node events %s", n.Name, got)
		}
	}
}

// dialWith tries a fresh hidden-node handshake with cookie.
func (c *cluster) dialWith(t *testing.T, node rotate.Node, cookie string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, client.Config{Node: "probe_" + strconv.FormatInt(time.Now().UnixNano(), 36) + "@127.0.0.5",
		Target: node.Name, EpmdAddr: node.Dial, Cookie: cookie})
	if err != nil {
		return err
	}
	conn.Close()
	return nil
}

func rotateStore(t *testing.T, tv *testVault) (*cookies.VaultStore, *beamtest.SyncBuffer) {
	log, logs := newLogger()
	s := openStore(t, cookies.VaultConfig{Address: tv.addr, CAFile: tv.caFile,
		Auth: tv.appRole(t, "rotator", "beamgate-gateway", time.Hour, 2*time.Hour), Logger: log})
	return s, logs
}

func openAudit(t *testing.T) (*audit.Log, string) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(p, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, p
}

// auditSteps returns "step:target" for each cookie rotation record.
func auditSteps(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	err = audit.Query(f, audit.Filter{}, func(r audit.Record) error {
		if r.Event == audit.EventCookieRotate {
			out = append(out, r.Detail["step"]+":"+r.Target)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func currentCookie(t *testing.T, tv *testVault) (string, int) {
	t.Helper()
	sec, err := tv.root.KVv2("secret").Get(context.Background(), cookies.DefaultPathPrefix+"/prismatic")
	if err != nil {
		t.Fatal(err)
	}
	return sec.Data["cookie"].(string), sec.VersionMetadata.Version
}

func TestRotateRealCluster(t *testing.T) {
	tv := startVault(t)
	tv.putCookie(t, "prismatic", oldCookie)
	c := startCluster(t)
	s, logs := rotateStore(t, tv)
	al, auditPath := openAudit(t)

	rep, err := rotate.Run(ctxT(t), rotate.Config{Store: s, Cluster: "prismatic", Nodes: c.rotate,
		ClientNode: "beamgate_rot@127.0.0.5", Actor: "ops", Audit: al})
	if err != nil {
		t.Fatalf("Rotate: %v (report %+v)", err, rep)
	}
	newCookie, ver := currentCookie(t, tv)
	if ver != 2 || rep.FromVersion != 1 || rep.ToVersion != 2 || rep.Resumed || newCookie == oldCookie {
		t.Errorf("report %+v, vault version %d", rep, ver)
	}
	for _, n := range rep.Nodes {
		if n.Outcome != rotate.NodeRotated || !n.Verified {
			t.Errorf("node %+v", n)
		}
	}
	if strings.Join(rep.Unlisted, ",") != "stray@"+nodeHost {
		t.Errorf("unlisted = %v", rep.Unlisted)
	}
	for _, n := range c.nodes {
		if got := n.Eval(t, "erlang:get_cookie()."); got != "'"+newCookie+"'" && got != newCookie {
			t.Errorf("%s: cookie = %s, want the new one", n.Name, got)
		}
	}
	c.checkConnected(t)
	for _, n := range c.rotate {
		if err := c.dialWith(t, n, oldCookie); err == nil {
			t.Errorf("%s still accepts the old cookie", n.Name)
		}
		if err := c.dialWith(t, n, newCookie); err != nil {
			t.Errorf("%s refuses the new cookie: %v", n.Name, err)
		}
	}
	// The store now serves the new cookie and the old one as previous.
	cur, prev, err := s.ProductionCookies(ctxT(t), "prismatic")
	if err != nil || cur != newCookie || prev != oldCookie {
		t.Errorf("ProductionCookies after rotation: %v", err)
	}
	steps := strings.Join(auditSteps(t, auditPath), " ")
	for _, want := range []string{"start:", "vault:", "set_cookie:prod1@", "set_cookie:prod2@", "verify:prod1@",
		"verify:prod2@", "unlisted:stray@", "done:"} {
		if !strings.Contains(steps, want) {
			t.Errorf("audit steps %q lack %q", steps, want)
		}
	}
	al.Close()
	raw, _ := os.ReadFile(auditPath)
	noSecrets(t, []string{string(raw), logs.String()}, oldCookie, newCookie)
	t.Logf("audit steps: %s", steps)
}

func TestRotateResumesAfterCrash(t *testing.T) {
	tv := startVault(t)
	tv.putCookie(t, "prismatic", oldCookie)
	c := startCluster(t)
	s, logs := rotateStore(t, tv)
	al, auditPath := openAudit(t)

	crash := errors.New("simulated crash")
	rep, err := rotate.Run(ctxT(t), rotate.Config{Store: s, Cluster: "prismatic", Nodes: c.rotate,
		ClientNode: "beamgate_rot@127.0.0.5", Audit: al,
		AfterSetCookie: func(string) error { return crash }})
	if !errors.Is(err, crash) {
		t.Fatalf("first Rotate = %v (report %+v), want the crash", err, rep)
	}
	newCookie, ver := currentCookie(t, tv)
	if ver != 2 {
		t.Fatalf("vault version after crash = %d", ver)
	}
	// Halfway: prod1 has the new cookie, prod2 the old; still connected.
	if err := c.dialWith(t, c.rotate[0], newCookie); err != nil {
		t.Errorf("prod1 after crash: %v", err)
	}
	if err := c.dialWith(t, c.rotate[1], oldCookie); err != nil {
		t.Errorf("prod2 after crash: %v", err)
	}
	c.checkConnected(t)

	rep, err = rotate.Run(ctxT(t), rotate.Config{Store: s, Cluster: "prismatic", Nodes: c.rotate,
		ClientNode: "beamgate_rot2@127.0.0.5", Audit: al})
	if err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	if !rep.Resumed || rep.FromVersion != 1 || rep.ToVersion != 2 ||
		rep.Nodes[0].Outcome != rotate.NodeAlready || rep.Nodes[1].Outcome != rotate.NodeRotated {
		t.Errorf("resumed report %+v", rep)
	}
	if got, ver := currentCookie(t, tv); got != newCookie || ver != 2 {
		t.Errorf("resume wrote another version (%d)", ver)
	}
	for _, n := range c.rotate {
		if err := c.dialWith(t, n, newCookie); err != nil {
			t.Errorf("%s after resume: %v", n.Name, err)
		}
	}
	c.checkConnected(t)
	// A third run starts a new rotation (the previous one is done).
	rep, err = rotate.Run(ctxT(t), rotate.Config{Store: s, Cluster: "prismatic", Nodes: c.rotate,
		ClientNode: "beamgate_rot3@127.0.0.5", Audit: al})
	if err != nil || rep.Resumed || rep.FromVersion != 2 || rep.ToVersion != 3 {
		t.Errorf("third Rotate: %+v, %v", rep, err)
	}
	al.Close()
	raw, _ := os.ReadFile(auditPath)
	noSecrets(t, []string{string(raw), logs.String()}, oldCookie, newCookie)
	t.Logf("audit steps: %s", strings.Join(auditSteps(t, auditPath), " "))
}

// A cookie write whose answer is lost comes back, on the client's retry,
// as a check-and-set mismatch: Rotate re-reads and sees its own value.
func TestRotateLostWriteAnswerAndConflict(t *testing.T) {
	tv := startVault(t)
	tv.putCookie(t, "prismatic", oldCookie)
	c := startCluster(t)
	px := tv.proxy(t)
	var dropped atomic.Int32
	px.setIntercept(func(w http.ResponseWriter, r *http.Request, forward func(http.ResponseWriter, *http.Request)) {
		if (r.Method == http.MethodPut || r.Method == http.MethodPost) &&
			strings.HasSuffix(r.URL.Path, "/secret/data/beamgate/clusters/prismatic") && dropped.Add(1) == 1 {
			forward(discard{}, r) // Vault applies the write; its answer is lost
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		forward(w, r)
	})
	log, logs := newLogger()
	s := openStore(t, cookies.VaultConfig{Address: px.URL(), CAFile: tv.caFile, MaxRetries: 2,
		Auth: tv.appRole(t, "rotator", "beamgate-gateway", time.Hour, 2*time.Hour), Logger: log})
	rep, err := rotate.Run(ctxT(t), rotate.Config{Store: s, Cluster: "prismatic", Nodes: c.rotate,
		ClientNode: "beamgate_rot@127.0.0.5", Audit: tempAudit(t)})
	if err != nil {
		t.Fatalf("Rotate with a lost write answer: %v", err)
	}
	if dropped.Load() < 2 {
		t.Errorf("the write was not retried (%d tries)", dropped.Load())
	}
	if _, ver := currentCookie(t, tv); ver != 2 || rep.ToVersion != 2 {
		t.Errorf("version %d, report %+v", ver, rep)
	}
	if !strings.Contains(logs.String(), "check-and-set refusal was our own retried write") {
		t.Errorf("no log of the CAS re-read: %s", logs.String())
	}

	// Someone changes the cookie in Vault during an unfinished rotation:
	// the next run refuses to guess.
	px.setIntercept(nil)
	_, err = rotate.Run(ctxT(t), rotate.Config{Store: s, Cluster: "prismatic", Nodes: c.rotate,
		ClientNode: "beamgate_rot2@127.0.0.5", Audit: tempAudit(t), AfterSetCookie: func(string) error { return errors.New("crash") }})
	if err == nil {
		t.Fatal("crash hook ignored")
	}
	tv.putCookie(t, "prismatic", "SOMEONEELSE")
	_, err = rotate.Run(ctxT(t), rotate.Config{Store: s, Cluster: "prismatic", Nodes: c.rotate,
		ClientNode: "beamgate_rot3@127.0.0.5", Audit: tempAudit(t)})
	if !errors.Is(err, cookies.ErrRotationConflict) {
		t.Errorf("rotation after an outside write = %v, want ErrRotationConflict", err)
	}
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

// tempAudit is an audit log for a rotation whose records the test does not
// read (a rotation needs one).
func tempAudit(t *testing.T) *audit.Log {
	t.Helper()
	l, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
