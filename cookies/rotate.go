package cookies

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"beamgate/audit"
	"beamgate/gateway/dist/client"
	"beamgate/gateway/dist/handshake"
	"beamgate/gateway/dist/term"
	"beamgate/gateway/epmd"

	vault "github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// AuditEventCookieRotate is the audit event of every cookie rotation step
// (audit.EventRotate is the audit log's own file rotation).
const AuditEventCookieRotate = "cookie_rotate"

// Rotation steps, as audit Detail["step"] and RotationState.State.
const (
	StepStart     = "start"      // rotation state written, nothing changed yet
	StepResume    = "resume"     // an unfinished rotation is being finished
	StepVault     = "vault"      // the new cookie is the newest KV version
	StepSetCookie = "set_cookie" // erlang:set_cookie/1 called on a node
	StepVerify    = "verify"     // a fresh handshake with the new cookie worked
	StepDone      = "done"       // every node verified
	StepUnlisted  = "unlisted"   // a node answers epmd but is not configured
)

// Rotation states kept in Vault.
const (
	rotationWriting = "writing" // the new cookie may not be in Vault yet
	rotationSetting = "setting" // the new cookie is in Vault; nodes follow
	rotationDone    = "done"
)

// Node outcomes in a RotateReport.
const (
	NodeRotated = "rotated" // set_cookie called now and verified
	NodeAlready = "already" // already accepted the new cookie (resumed run)
	NodeFailed  = "failed"
)

// GeneratedCookieLen is the length of a cookie Rotate generates.
const GeneratedCookieLen = 32

// cookieAlphabet holds the characters of generated cookies: valid in an
// unquoted -setcookie argument and in an atom.
const cookieAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// DefaultNodeTimeout bounds the work on one node (dial and call) in Rotate.
const DefaultNodeTimeout = 15 * time.Second

// maxRotateNodes bounds the nodes of one rotation.
const maxRotateNodes = 10000

// RotateNode is one production node of the cluster being rotated.
type RotateNode struct {
	Name string // prismatic@prod-01
	Dial string // its epmd: host, or host:port (4369 default)
}

// RotateConfig configures Rotate.
type RotateConfig struct {
	Store   *VaultStore
	Cluster string
	Nodes   []RotateNode

	// ClientNode is the hidden node name beamgate uses towards production;
	// each connection gets a numbered variant of its alive part. Default
	// beamgate_rotate_<random>@<hostname>.
	ClientNode  string
	Actor       string        // who rotates, for the audit log
	NodeTimeout time.Duration // per node step (DefaultNodeTimeout)
	NetTicktime time.Duration // production's net_ticktime (0 = 60 s)

	// Audit receives every step before Rotate goes on; an error aborts the
	// rotation. AuditLog is used when Audit is nil. Both nil: no audit.
	Audit    func(context.Context, *audit.Record) error
	AuditLog *audit.Log

	// AfterSetCookie, when set, runs after each node got the new cookie and
	// before the next one; an error aborts the rotation there, as a crash
	// would. For tests of resumption.
	AfterSetCookie func(node string) error

	// Rand is the randomness for the new cookie (crypto/rand).
	Rand io.Reader
}

// NodeReport is one node's part of a rotation.
type NodeReport struct {
	Name     string
	Outcome  string // NodeRotated, NodeAlready or NodeFailed
	Verified bool   // a fresh handshake under the new cookie worked
	Err      string // why it failed; never contains a cookie
}

// RotateReport is what Rotate did.
type RotateReport struct {
	Cluster     string
	FromVersion int // KV version of the old cookie
	ToVersion   int // KV version of the new cookie
	Resumed     bool
	Nodes       []NodeReport
	// Unlisted are nodes (alive@host) registered in the epmd of a node
	// host but missing from the configuration; they keep the old cookie.
	Unlisted []string
	Warnings []string // e.g. an epmd that did not answer
	Started  time.Time
	Finished time.Time
}

// RotationState is the progress of a cluster's rotation, kept in Vault at
// <kv_mount>/<rotations_path>/<cluster> so a crashed rotation can be
// finished by any later run.
type RotationState struct {
	State       string    `json:"state"`
	FromVersion int       `json:"from_version"`
	ToVersion   int       `json:"to_version"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished,omitzero"`
	Actor       string    `json:"actor,omitempty"`
	NodesDone   []string  `json:"nodes_done,omitempty"`
}

// ErrRotationConflict reports that the cluster's secret changed under a
// rotation, or another rotation runs.
var ErrRotationConflict = errors.New("cookies: rotation conflict")

// GenerateCookie returns a GeneratedCookieLen-character cookie of A-Z and
// 0-9 read from r (crypto/rand when nil), without modulo bias.
func GenerateCookie(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	const limit = 256 - 256%len(cookieAlphabet)
	out := make([]byte, 0, GeneratedCookieLen)
	buf := make([]byte, 64)
	for tries := 0; len(out) < GeneratedCookieLen; tries++ {
		if tries > 64 {
			return "", errors.New("cookies: random source keeps returning unusable bytes")
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("cookies: random source: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < GeneratedCookieLen {
				out = append(out, cookieAlphabet[int(b)%len(cookieAlphabet)])
			}
		}
	}
	return string(out), nil
}

// rotation is one Rotate run.
type rotation struct {
	cfg   RotateConfig
	s     *VaultStore
	rep   *RotateReport
	state RotationState
	stVer int // KV version of the rotation state secret (0 = none)
	old   string
	new   string
	conns atomic.Uint64
	alive string // our alive name's base
	host  string
}

// Rotate gives cfg.Cluster a new cookie: it records the rotation in Vault,
// writes the new cookie as a new KV version (check-and-set on the version
// read), sets it on every node with erlang:set_cookie/1 over a hidden
// connection made with the old cookie, and verifies every node with a
// fresh handshake under the new cookie. Established distribution
// connections between nodes survive: a cookie is only checked in a
// handshake. Running Rotate again after a crash finishes the rotation:
// nodes already accepting the new cookie are skipped.
//
// The report is returned with the error, as far as the rotation got.
func Rotate(ctx context.Context, cfg RotateConfig) (*RotateReport, error) {
	r, err := newRotation(cfg)
	if err != nil {
		return nil, err
	}
	err = r.run(ctx)
	r.rep.Finished = time.Now()
	return r.rep, err
}

func newRotation(cfg RotateConfig) (*rotation, error) {
	if cfg.Store == nil {
		return nil, errors.New("cookies: rotate needs a vault store")
	}
	if err := checkCluster(cfg.Cluster); err != nil {
		return nil, err
	}
	if len(cfg.Nodes) == 0 || len(cfg.Nodes) > maxRotateNodes {
		return nil, fmt.Errorf("cookies: rotate cluster %q: %d nodes configured", cfg.Cluster, len(cfg.Nodes))
	}
	seen := make(map[string]bool, len(cfg.Nodes))
	for _, n := range cfg.Nodes {
		if err := handshake.CheckNodeName(n.Name); err != nil {
			return nil, fmt.Errorf("cookies: rotate cluster %q: %w", cfg.Cluster, err)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("cookies: rotate cluster %q: node %s listed twice", cfg.Cluster, n.Name)
		}
		seen[n.Name] = true
	}
	if cfg.ClientNode == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		cfg.ClientNode = "beamgate_rotate_" + randomSuffix() + "@" + host
	}
	if err := handshake.CheckNodeName(cfg.ClientNode); err != nil {
		return nil, fmt.Errorf("cookies: rotate client node: %w", err)
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = DefaultNodeTimeout
	}
	if cfg.Audit == nil && cfg.AuditLog != nil {
		cfg.Audit = cfg.AuditLog.Append
	}
	alive, host, _ := strings.Cut(cfg.ClientNode, "@")
	return &rotation{
		cfg:   cfg,
		s:     cfg.Store,
		rep:   &RotateReport{Cluster: cfg.Cluster, Started: time.Now()},
		alive: alive,
		host:  host,
	}, nil
}

func randomSuffix() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *rotation) run(ctx context.Context) error {
	r.findUnlisted(ctx)
	if err := r.prepare(ctx); err != nil {
		return err
	}
	for _, u := range r.rep.Unlisted {
		if err := r.audit(ctx, StepUnlisted, u, audit.DecisionInfo,
			"node answers epmd on a cluster host but is not configured; it keeps the old cookie"); err != nil {
			return err
		}
	}
	if err := r.rotateNodes(ctx); err != nil {
		return err
	}
	failed := 0
	for _, n := range r.rep.Nodes {
		if n.Outcome == NodeFailed {
			failed++
		}
	}
	if failed > 0 {
		if err := r.saveState(ctx); err != nil {
			r.s.log.Warn("saving rotation progress", zap.String("cluster", r.cfg.Cluster), zap.Error(err))
		}
		return fmt.Errorf("cookies: rotation of cluster %q incomplete: %d of %d nodes failed; run it again to finish",
			r.cfg.Cluster, failed, len(r.rep.Nodes))
	}
	r.state.State = rotationDone
	r.state.Finished = time.Now().UTC()
	if err := r.saveState(ctx); err != nil {
		return err
	}
	return r.audit(ctx, StepDone, "", audit.DecisionInfo, fmt.Sprintf("%d nodes accept the new cookie", len(r.rep.Nodes)))
}

// prepare establishes the old and new cookies, resuming an unfinished
// rotation or starting one, and makes sure the new cookie is the newest
// KV version.
func (r *rotation) prepare(ctx context.Context) error {
	st, stVer, err := r.readState(ctx)
	if err != nil {
		return err
	}
	r.stVer = stVer
	cur, curVer, err := r.s.readCurrent(ctx, r.cfg.Cluster)
	if err != nil {
		return err
	}
	if st != nil && st.State != rotationDone {
		r.state = *st
		r.rep.Resumed = true
		r.rep.FromVersion, r.rep.ToVersion = st.FromVersion, st.ToVersion
		switch {
		case curVer == st.ToVersion:
			r.new = cur
			if r.old, err = r.s.readVersion(ctx, r.cfg.Cluster, st.FromVersion); err != nil {
				return fmt.Errorf("cookies: resuming rotation of %q: old cookie: %w", r.cfg.Cluster, err)
			}
		case curVer == st.FromVersion && st.State == rotationWriting:
			r.old = cur // the new cookie never reached Vault: write one now
		default:
			return fmt.Errorf("%w: cluster %q is at version %d but the unfinished rotation goes from %d to %d; resolve it by hand",
				ErrRotationConflict, r.cfg.Cluster, curVer, st.FromVersion, st.ToVersion)
		}
		if err := r.audit(ctx, StepResume, "", audit.DecisionInfo, "finishing an unfinished rotation (state "+st.State+")"); err != nil {
			return err
		}
	} else {
		r.old = cur
		r.state = RotationState{State: rotationWriting, FromVersion: curVer, ToVersion: curVer + 1,
			Started: time.Now().UTC(), Actor: r.cfg.Actor}
		r.rep.FromVersion, r.rep.ToVersion = curVer, curVer+1
		if err := r.audit(ctx, StepStart, "", audit.DecisionInfo, "cookie rotation started"); err != nil {
			return err
		}
		if err := r.saveState(ctx); err != nil {
			return err
		}
	}
	if r.new == "" {
		if err := r.writeCookie(ctx); err != nil {
			return err
		}
	}
	if r.state.State == rotationWriting {
		r.state.State = rotationSetting
		if err := r.saveState(ctx); err != nil {
			return err
		}
	}
	r.s.forget(r.cfg.Cluster)
	return nil
}

// writeCookie writes a new cookie as version ToVersion, with check-and-set
// on FromVersion. A CAS refusal after the client's own retries may mean
// our first try landed and only its answer was lost: re-read and compare.
func (r *rotation) writeCookie(ctx context.Context) error {
	cookie, err := GenerateCookie(r.cfg.Rand)
	if err != nil {
		return err
	}
	if cookie == r.old {
		return errors.New("cookies: generated cookie equals the old one; random source is broken")
	}
	v, err := casPut(ctx, r.s, r.s.ClusterPath(r.cfg.Cluster), map[string]any{CookieField: cookie},
		r.state.FromVersion, func(got map[string]any) bool { return got[CookieField] == cookie })
	if err != nil {
		if isCASMismatch(err) {
			return fmt.Errorf("%w: cluster %q changed in Vault while rotating (expected version %d)",
				ErrRotationConflict, r.cfg.Cluster, r.state.FromVersion)
		}
		return err
	}
	if v != r.state.ToVersion {
		return fmt.Errorf("%w: cluster %q: the new cookie became version %d, expected %d", ErrRotationConflict,
			r.cfg.Cluster, v, r.state.ToVersion)
	}
	r.new = cookie
	return r.audit(ctx, StepVault, "", audit.DecisionInfo, "new cookie written to Vault")
}

// rotationPath is the KV path of the cluster's rotation state.
func (r *rotation) rotationPath() string { return r.s.cfg.RotationsPath + "/" + r.cfg.Cluster }

// readState reads the rotation state; nil when there is none.
func (r *rotation) readState(ctx context.Context) (*RotationState, int, error) {
	sec, err := r.s.kvGet(ctx, r.rotationPath(), 0)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if sec.VersionMetadata == nil {
		return nil, 0, errors.New("cookies: rotation state without version metadata")
	}
	if sec.Data == nil { // deleted: treat as no rotation
		return nil, sec.VersionMetadata.Version, nil
	}
	var st RotationState
	if err := decodeKV(sec.Data, &st); err != nil {
		return nil, 0, fmt.Errorf("cookies: rotation state of %q: %w", r.cfg.Cluster, err)
	}
	return &st, sec.VersionMetadata.Version, nil
}

// saveState writes the rotation state with check-and-set, so two
// rotations of one cluster cannot both proceed.
func (r *rotation) saveState(ctx context.Context) error {
	data, err := encodeKV(r.state)
	if err != nil {
		return err
	}
	v, err := casPut(ctx, r.s, r.rotationPath(), data, r.stVer, func(got map[string]any) bool {
		var st RotationState
		return decodeKV(got, &st) == nil && st.State == r.state.State && slices.Equal(st.NodesDone, r.state.NodesDone) &&
			st.ToVersion == r.state.ToVersion
	})
	if err != nil {
		if isCASMismatch(err) {
			return fmt.Errorf("%w: another rotation of cluster %q is writing its state", ErrRotationConflict, r.cfg.Cluster)
		}
		return err
	}
	r.stVer = v
	return nil
}

// casPut writes data at path with check-and-set on version cas and returns
// the new version. A CAS refusal is checked with ours: if the current
// value is ours, an earlier try of this write landed.
func casPut(ctx context.Context, s *VaultStore, path string, data map[string]any, cas int, ours func(map[string]any) bool) (int, error) {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout*time.Duration(s.cfg.MaxRetries+2))
	defer cancel()
	sec, err := s.kv.Put(wctx, path, data, vault.WithCheckAndSet(cas))
	if err == nil {
		if sec == nil || sec.VersionMetadata == nil {
			return 0, fmt.Errorf("cookies: vault write of %s returned no version", path)
		}
		return sec.VersionMetadata.Version, nil
	}
	if !isCASMismatch(err) {
		return 0, s.vaultErr("writing "+s.cfg.KVMount+"/"+path, err)
	}
	cur, rerr := s.kvGet(ctx, path, 0)
	if rerr == nil && cur.VersionMetadata != nil && cur.VersionMetadata.Version == cas+1 && cur.Data != nil && ours(cur.Data) {
		s.log.Info("check-and-set refusal was our own retried write", zap.String("path", path), zap.Int("version", cas+1))
		return cas + 1, nil
	}
	return 0, err
}

// findUnlisted asks the epmd of every node host for its nodes and reports
// those the configuration does not list.
func (r *rotation) findUnlisted(ctx context.Context) {
	configured := make(map[string]map[string]bool) // epmd addr -> alive names
	hosts := make(map[string]string)               // epmd addr -> host for names
	var order []string
	for _, n := range r.cfg.Nodes {
		addr := epmdAddr(n.Dial, n.Name)
		if configured[addr] == nil {
			configured[addr] = make(map[string]bool)
			_, h, _ := strings.Cut(n.Name, "@")
			hosts[addr] = h
			order = append(order, addr)
		}
		alive, _, _ := strings.Cut(n.Name, "@")
		configured[addr][alive] = true
	}
	for _, addr := range order {
		lctx, cancel := context.WithTimeout(ctx, r.cfg.NodeTimeout)
		names, err := epmd.ListNames(lctx, addr)
		cancel()
		if err != nil {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("epmd %s did not list its nodes: %v", addr, err))
			continue
		}
		for _, e := range names {
			if !configured[addr][e.Name] {
				r.rep.Unlisted = append(r.rep.Unlisted, e.Name+"@"+hosts[addr])
			}
		}
	}
	slices.Sort(r.rep.Unlisted)
	r.rep.Unlisted = slices.Compact(r.rep.Unlisted)
}

// epmdAddr turns a node's Dial (host or host:port) into an epmd address.
func epmdAddr(dial, node string) string {
	if dial == "" {
		_, dial, _ = strings.Cut(node, "@")
	}
	addr, _ := epmd.Addr(dial)
	return addr
}

// rotateNodes connects to every node with the old cookie first, then sets
// the new cookie on all of them in quick succession (keeping the window in
// which two nodes disagree about the cookie short), then verifies each.
func (r *rotation) rotateNodes(ctx context.Context) error {
	r.rep.Nodes = make([]NodeReport, len(r.cfg.Nodes))
	conns := make([]*client.Conn, len(r.cfg.Nodes))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i, n := range r.cfg.Nodes {
		nr := &r.rep.Nodes[i]
		nr.Name = n.Name
		if err := r.verify(ctx, n); err == nil {
			nr.Outcome, nr.Verified = NodeAlready, true
			if err := r.audit(ctx, StepVerify, n.Name, audit.DecisionInfo, "node already accepts the new cookie"); err != nil {
				return err
			}
			continue
		}
		c, err := r.dial(ctx, n, r.old)
		if err != nil {
			r.nodeFailed(ctx, nr, "connecting with the old cookie", err)
			continue
		}
		conns[i] = c
	}
	for i, n := range r.cfg.Nodes {
		c := conns[i]
		if c == nil {
			continue
		}
		nr := &r.rep.Nodes[i]
		if err := r.audit(ctx, StepSetCookie, n.Name, audit.DecisionInfo, "setting the new cookie"); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, r.cfg.NodeTimeout)
		res, err := c.Call(cctx, "erlang", "set_cookie", []term.Term{term.Atom(r.new)})
		cancel()
		c.Close()
		conns[i] = nil
		if err == nil && res != term.Atom("true") {
			err = fmt.Errorf("erlang:set_cookie/1 returned %s", term.Format(res, 64))
		}
		if err != nil {
			r.nodeFailed(ctx, nr, "erlang:set_cookie/1", err)
			continue
		}
		nr.Outcome = NodeRotated
		if r.cfg.AfterSetCookie != nil {
			if err := r.cfg.AfterSetCookie(n.Name); err != nil {
				return fmt.Errorf("cookies: rotation of %q aborted after %s: %w", r.cfg.Cluster, n.Name, err)
			}
		}
	}
	for i, n := range r.cfg.Nodes {
		nr := &r.rep.Nodes[i]
		if nr.Outcome != NodeRotated {
			continue
		}
		if err := r.verify(ctx, n); err != nil {
			r.nodeFailed(ctx, nr, "verifying with the new cookie", err)
			continue
		}
		nr.Verified = true
		r.state.NodesDone = append(r.state.NodesDone, n.Name)
		if err := r.audit(ctx, StepVerify, n.Name, audit.DecisionInfo, "fresh handshake with the new cookie works"); err != nil {
			return err
		}
	}
	for _, nr := range r.rep.Nodes {
		if nr.Outcome == NodeAlready && !slices.Contains(r.state.NodesDone, nr.Name) {
			r.state.NodesDone = append(r.state.NodesDone, nr.Name)
		}
	}
	return nil
}

func (r *rotation) nodeFailed(ctx context.Context, nr *NodeReport, what string, err error) {
	nr.Outcome = NodeFailed
	nr.Err = what + ": " + scrub(scrub(err, r.new), r.old).Error()
	if aerr := r.audit(ctx, StepVerify, nr.Name, audit.DecisionDeny, nr.Err); aerr != nil {
		r.s.log.Warn("auditing a failed node", zap.String("node", nr.Name), zap.Error(aerr))
	}
}

// verify makes a fresh handshake under the new cookie and checks that the
// node answers erlang:node() with its own name.
func (r *rotation) verify(ctx context.Context, n RotateNode) error {
	c, err := r.dial(ctx, n, r.new)
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, r.cfg.NodeTimeout)
	defer cancel()
	got, err := c.Call(cctx, "erlang", "node", nil)
	if err != nil {
		return err
	}
	if got != term.Atom(n.Name) {
		return fmt.Errorf("node answered erlang:node() with %s", term.Format(got, 300))
	}
	return nil
}

// dial connects as a fresh hidden node name, so that no connection is
// mistaken for an earlier one still being torn down.
func (r *rotation) dial(ctx context.Context, n RotateNode, cookie string) (*client.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, r.cfg.NodeTimeout)
	defer cancel()
	name := fmt.Sprintf("%s_%d@%s", r.alive, r.conns.Add(1), r.host)
	c, err := client.Dial(dctx, client.Config{
		Node:        name,
		Target:      n.Name,
		EpmdAddr:    epmdAddr(n.Dial, n.Name),
		Cookie:      cookie,
		NetTicktime: r.cfg.NetTicktime,
		Logf:        func(string, ...any) {},
	})
	if err != nil {
		return nil, scrub(err, cookie)
	}
	return c, nil
}

// scrub replaces an error whose text contains secret by one that does not.
func scrub(err error, secret string) error {
	if secret != "" && strings.Contains(err.Error(), secret) {
		return errors.New("error text withheld: it contained the cookie")
	}
	return err
}

// audit records one rotation step.
func (r *rotation) audit(ctx context.Context, step, node, decision, reason string) error {
	if r.cfg.Audit == nil {
		return nil
	}
	rec := &audit.Record{
		Event:    AuditEventCookieRotate,
		User:     r.cfg.Actor,
		Cluster:  r.cfg.Cluster,
		Target:   node,
		Decision: decision,
		Reason:   reason,
		Detail: map[string]string{
			"step":         step,
			"from_version": strconv.Itoa(r.state.FromVersion),
			"to_version":   strconv.Itoa(r.state.ToVersion),
		},
	}
	if err := r.cfg.Audit(ctx, rec); err != nil {
		return fmt.Errorf("cookies: rotation of %q stopped: audit: %w", r.cfg.Cluster, err)
	}
	return nil
}

// decodeKV converts KV data (JSON numbers as json.Number) into v.
func decodeKV(data map[string]any, v any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// encodeKV converts v into KV data.
func encodeKV(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}
