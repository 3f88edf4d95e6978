// Package rotate owns production cookie rotation: it gives a cluster a new
// cookie in Vault (through package cookies), sets it on every node over a
// hidden-node connection made with the old cookie, verifies every node
// with a fresh handshake under the new one, and audits each step before
// taking the next. A crashed rotation is finished by running it again.
package rotate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"beamgate/cookies"
	"beamgate/gateway/dist/client"
	"beamgate/gateway/dist/handshake"
	"beamgate/gateway/dist/term"
	"beamgate/gateway/epmd"

	"go.uber.org/zap"
)

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

// Node outcomes in a Report.
const (
	NodeRotated = "rotated" // set_cookie called now and verified
	NodeAlready = "already" // already accepted the new cookie (resumed run)
	NodeFailed  = "failed"
)

// DefaultNodeTimeout bounds the work on one node (dial and call) in Rotate.
const DefaultNodeTimeout = 15 * time.Second

// maxNodes bounds the nodes of one rotation.
const maxNodes = 10000

// Node is one production node of the cluster being rotated.
type Node struct {
	Name string // prismatic@prod-01
	Dial string // its epmd: host, or host:port (4369 default)
}

// Config configures Rotate.
type Config struct {
	Store   *cookies.VaultStore
	Cluster string
	Nodes   []Node

	// ClientNode is the hidden node name beamgate uses towards production;
	// each connection gets a numbered variant of its alive part. Default
	// beamgate_rotate_<random>@<hostname>.
	ClientNode  string
	Actor       string        // who rotates, for the audit log
	NodeTimeout time.Duration // per node step (DefaultNodeTimeout)
	NetTicktime time.Duration // production's net_ticktime (0 = 60 s)

	// Audit receives every step before Run goes on (audit.Gate); an error
	// aborts the rotation. Required.
	Audit audit.Sink
	// Log is for warnings that do not stop the rotation; nil logs nothing.
	Log *zap.Logger

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

// Report is what Rotate did.
type Report struct {
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

// rotation is one Rotate run.
type rotation struct {
	cfg   Config
	s     *cookies.VaultStore
	rep   *Report
	state cookies.RotationState
	stVer int // KV version of the rotation state secret (0 = none)
	old   string
	new   string
	conns atomic.Uint64
	alive string // our alive name's base
	host  string
	log   *zap.Logger
	aud   audit.Writer
}

// Run gives cfg.Cluster a new cookie: it records the rotation in Vault,
// writes the new cookie as a new KV version (check-and-set on the version
// read), sets it on every node with erlang:set_cookie/1 over a hidden
// connection made with the old cookie, and verifies every node with a
// fresh handshake under the new cookie. Established distribution
// connections between nodes survive: a cookie is only checked in a
// handshake. Running Rotate again after a crash finishes the rotation:
// nodes already accepting the new cookie are skipped.
//
// The report is returned with the error, as far as the rotation got.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	r, err := newRotation(cfg)
	if err != nil {
		return nil, err
	}
	err = r.run(ctx)
	r.rep.Finished = time.Now()
	return r.rep, err
}

func newRotation(cfg Config) (*rotation, error) {
	if cfg.Store == nil {
		return nil, errors.New("rotate: rotate needs a vault store")
	}
	if err := cookies.CheckCluster(cfg.Cluster); err != nil {
		return nil, err
	}
	if len(cfg.Nodes) == 0 || len(cfg.Nodes) > maxNodes {
		return nil, fmt.Errorf("rotate: rotate cluster %q: %d nodes configured", cfg.Cluster, len(cfg.Nodes))
	}
	seen := make(map[string]bool, len(cfg.Nodes))
	for _, n := range cfg.Nodes {
		if err := handshake.CheckNodeName(n.Name); err != nil {
			return nil, fmt.Errorf("rotate: rotate cluster %q: %w", cfg.Cluster, err)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("rotate: rotate cluster %q: node %s listed twice", cfg.Cluster, n.Name)
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
		return nil, fmt.Errorf("rotate: rotate client node: %w", err)
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = DefaultNodeTimeout
	}
	if cfg.Audit == nil {
		return nil, errors.New("rotate: a rotation needs an audit sink")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	alive, host, _ := strings.Cut(cfg.ClientNode, "@")
	return &rotation{
		cfg:   cfg,
		s:     cfg.Store,
		rep:   &Report{Cluster: cfg.Cluster, Started: time.Now()},
		alive: alive,
		host:  host,
		log:   cfg.Log,
		aud:   audit.Writer{Sink: cfg.Audit, Log: cfg.Log},
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
			r.log.Warn("saving rotation progress", zap.String("cluster", r.cfg.Cluster), zap.Error(err))
		}
		return fmt.Errorf("rotate: rotation of cluster %q incomplete: %d of %d nodes failed; run it again to finish",
			r.cfg.Cluster, failed, len(r.rep.Nodes))
	}
	r.state.State = cookies.RotationDone
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
	st, stVer, err := r.s.RotationState(ctx, r.cfg.Cluster)
	if err != nil {
		return err
	}
	r.stVer = stVer
	cur, curVer, err := r.s.CurrentCookie(ctx, r.cfg.Cluster)
	if err != nil {
		return err
	}
	if st != nil && st.State != cookies.RotationDone {
		r.state = *st
		r.rep.Resumed = true
		r.rep.FromVersion, r.rep.ToVersion = st.FromVersion, st.ToVersion
		switch {
		case curVer == st.ToVersion:
			r.new = cur
			if r.old, err = r.s.CookieAt(ctx, r.cfg.Cluster, st.FromVersion); err != nil {
				return fmt.Errorf("rotate: resuming rotation of %q: old cookie: %w", r.cfg.Cluster, err)
			}
		case curVer == st.FromVersion && st.State == cookies.RotationWriting:
			r.old = cur // the new cookie never reached Vault: write one now
		default:
			return fmt.Errorf("%w: cluster %q is at version %d but the unfinished rotation goes from %d to %d; resolve it by hand",
				cookies.ErrRotationConflict, r.cfg.Cluster, curVer, st.FromVersion, st.ToVersion)
		}
		if err := r.audit(ctx, StepResume, "", audit.DecisionInfo, "finishing an unfinished rotation (state "+st.State+")"); err != nil {
			return err
		}
	} else {
		r.old = cur
		r.state = cookies.RotationState{State: cookies.RotationWriting, FromVersion: curVer, ToVersion: curVer + 1,
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
	if r.state.State == cookies.RotationWriting {
		r.state.State = cookies.RotationSetting
		if err := r.saveState(ctx); err != nil {
			return err
		}
	}
	r.s.Forget(r.cfg.Cluster)
	return nil
}

// writeCookie writes a new cookie as version ToVersion, with check-and-set
// on FromVersion.
func (r *rotation) writeCookie(ctx context.Context) error {
	cookie, err := cookies.GenerateCookie(r.cfg.Rand)
	if err != nil {
		return err
	}
	if cookie == r.old {
		return errors.New("rotate: generated cookie equals the old one; random source is broken")
	}
	v, err := r.s.WriteCookie(ctx, r.cfg.Cluster, cookie, r.state.FromVersion)
	if err != nil {
		return err
	}
	if v != r.state.ToVersion {
		return fmt.Errorf("%w: cluster %q: the new cookie became version %d, expected %d", cookies.ErrRotationConflict,
			r.cfg.Cluster, v, r.state.ToVersion)
	}
	r.new = cookie
	return r.audit(ctx, StepVault, "", audit.DecisionInfo, "new cookie written to Vault")
}

// saveState writes the rotation state with check-and-set.
func (r *rotation) saveState(ctx context.Context) error {
	v, err := r.s.SaveRotationState(ctx, r.cfg.Cluster, r.state, r.stVer)
	if err != nil {
		return err
	}
	r.stVer = v
	return nil
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
				return fmt.Errorf("rotate: rotation of %q aborted after %s: %w", r.cfg.Cluster, n.Name, err)
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
		r.log.Warn("auditing a failed node", zap.String("node", nr.Name), zap.Error(aerr))
	}
}

// verify makes a fresh handshake under the new cookie and checks that the
// node answers erlang:node() with its own name.
func (r *rotation) verify(ctx context.Context, n Node) error {
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
func (r *rotation) dial(ctx context.Context, n Node, cookie string) (*client.Conn, error) {
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
func (r *rotation) audit(ctx context.Context, step, node string, decision audit.Decision, reason string) error {
	rec := &audit.Record{
		Event:    audit.EventCookieRotate,
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
	if err := r.aud.Record(ctx, audit.Gate, rec); err != nil {
		return fmt.Errorf("rotate: rotation of %q stopped: audit: %w", r.cfg.Cluster, err)
	}
	return nil
}
