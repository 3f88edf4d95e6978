package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"beamgate/audit"
	"beamgate/cookies"
	"beamgate/gateway/config"
	"beamgate/gateway/relay"
	"beamgate/policy"

	"github.com/gliderlabs/ssh"
	"go.uber.org/zap"
)

// Break-glass commands: shell-request, shell-requests, shell-approve,
// shell-deny, shell-grants and shell-revoke. The requests live in
// Options.Shells (Vault with cookies.backend: vault, so every replica
// sees them); every change is audited before it is stored.

// errNoBreakGlass is the refusal when no store is configured.
var errNoBreakGlass = errors.New("break-glass shells are not set up on this gateway")

// isShellCommand reports the break-glass commands.
func isShellCommand(name string) bool {
	switch name {
	case "shell-request", "shell-requests", "shell-approve", "shell-deny", "shell-grants", "shell-revoke":
		return true
	}
	return false
}

// shellArgs splits a command's words into positional words and flags;
// --reason takes every word up to the next --flag, so
// `--reason queue stuck on 3 nodes` needs no quoting.
func shellArgs(words []string) (pos []string, flags map[string]string, err error) {
	flags = map[string]string{}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") {
			pos = append(pos, w)
			continue
		}
		name := strings.TrimPrefix(w, "--")
		if v, ok := strings.CutPrefix(name, "reason="); ok {
			name, words = "reason", append(append(words[:i+1:i+1], v), words[i+1:]...)
		}
		switch name {
		case "reason":
			var text []string
			for i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
				i++
				text = append(text, words[i])
			}
			flags["reason"] = strings.Trim(strings.Join(text, " "), `"'`)
		case "for":
			if i+1 >= len(words) {
				return nil, nil, errors.New("--for needs a duration, e.g. --for 30m")
			}
			i++
			flags["for"] = words[i]
		case "elixir", "erlang":
			flags[name] = "1"
		default:
			return nil, nil, fmt.Errorf("unknown flag %s", w)
		}
	}
	return pos, flags, nil
}

// loadShells reads the break-glass book.
func (s *Server) loadShells(ctx context.Context) (*policy.ShellBook, error) {
	if s.opts.Shells == nil {
		return nil, errNoBreakGlass
	}
	doc, _, err := s.opts.Shells.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the break-glass requests: %w", err)
	}
	return decodeShells(doc)
}

func decodeShells(doc []byte) (*policy.ShellBook, error) {
	b := &policy.ShellBook{}
	if len(doc) == 0 || string(doc) == "null" {
		return b, nil
	}
	if err := json.Unmarshal(doc, b); err != nil {
		return nil, fmt.Errorf("the break-glass requests are malformed: %w", err)
	}
	return b, nil
}

// updateShells applies fn to the book and stores it (check-and-set).
func (s *Server) updateShells(ctx context.Context, fn func(*policy.ShellBook) error) error {
	if s.opts.Shells == nil {
		return errNoBreakGlass
	}
	return cookies.UpdateDoc(ctx, s.opts.Shells, func(doc []byte) ([]byte, error) {
		b, err := decodeShells(doc)
		if err != nil {
			return nil, err
		}
		if err := fn(b); err != nil {
			return nil, err
		}
		return json.Marshal(b)
	})
}

// shellRecord is an audit record of a break-glass step on r.
func (s *Server) shellRecord(ctx ssh.Context, id *Identity, ev audit.Event, decision audit.Decision, reason string, r *policy.ShellRequest) *audit.Record {
	rec := s.record(ctx, id, ev, decision, reason)
	if r != nil {
		rec.Target, rec.Cluster = r.Node, r.Cluster
		rec.Detail = mergeDetail(rec.Detail, "request", r.ID)
		rec.Detail["requester"] = r.User
		rec.Detail["for"] = r.For.String()
		if !r.Expires.IsZero() {
			rec.Detail["expires"] = r.Expires.UTC().Format(time.RFC3339)
		}
	}
	return rec
}

// runShellCommand serves the break-glass commands. It returns the exit
// status; out gets what the engineer reads.
func (s *Server) runShellCommand(ctx ssh.Context, id *Identity, args []string, out *bytes.Buffer) uint32 {
	pos, flags, err := shellArgs(args[1:])
	refuse := func(ev audit.Event, r *policy.ShellRequest, err error) uint32 {
		s.aud.Record(ctx, audit.After, s.shellRecord(ctx, id, ev, audit.DecisionDeny, err.Error(), r))
		fmt.Fprintf(out, "beamgate: %s: %s\n", args[0], err)
		return 1
	}
	if err != nil {
		return refuse(audit.EventExec, nil, err)
	}
	now := s.now()
	cfg := s.conf()
	switch args[0] {
	case "shell-request":
		return s.shellRequest(ctx, id, cfg, pos, flags, out, refuse)
	case "shell-requests", "shell-grants":
		b, err := s.loadShells(ctx)
		if err != nil {
			return refuse(audit.EventExec, nil, err)
		}
		var list []*policy.ShellRequest
		if args[0] == "shell-requests" {
			list = b.Select(func(r *policy.ShellRequest) bool {
				return r.State(now) == policy.ShellPending && r.User != id.User && cfg.ShellRight(id.Roles(), r.Cluster, config.ShellApprove)
			})
		} else {
			list = b.Select(func(r *policy.ShellRequest) bool {
				return r.State(now) == policy.ShellActive && (r.User == id.User || cfg.ShellRight(id.Roles(), r.Cluster, config.ShellApprove))
			})
		}
		s.aud.Record(ctx, audit.After, s.record(ctx, id, audit.EventExec, audit.DecisionAllow, ""))
		writeShellList(out, list, now, args[0] == "shell-grants")
		return 0
	}
	if len(pos) != 1 {
		return refuse(audit.EventExec, nil, fmt.Errorf("usage: %s ID%s", args[0], map[bool]string{true: " --reason TEXT"}[args[0] == "shell-deny"]))
	}
	rid := pos[0]
	var (
		r       *policy.ShellRequest
		granted bool
		ev      audit.Event
	)
	switch args[0] {
	case "shell-approve":
		ev = audit.EventShellApprove
	case "shell-deny":
		ev = audit.EventShellDeny
	default:
		ev = audit.EventShellRevoke
	}
	// Decide on a copy first, audit the decision, then store it.
	b, err := s.loadShells(ctx)
	if err != nil {
		return refuse(ev, nil, err)
	}
	decide := func(b *policy.ShellBook) error {
		found, err := b.Find(rid)
		if err != nil {
			return err
		}
		may := cfg.ShellRight(id.Roles(), found.Cluster, config.ShellApprove)
		switch ev {
		case audit.EventShellApprove:
			r, granted, err = b.Approve(rid, id.User, may, now)
		case audit.EventShellDeny:
			r, err = b.Deny(rid, id.User, flags["reason"], may, now)
		default:
			r, err = b.Revoke(rid, id.User, may, now)
		}
		if r == nil {
			r = found
		}
		return err
	}
	if err := decide(b); err != nil {
		return refuse(ev, r, err)
	}
	rec := s.shellRecord(ctx, id, ev, audit.DecisionAllow, flags["reason"], r)
	if granted {
		rec.Detail["granted"] = "true"
	}
	if err := s.aud.Record(ctx, audit.Gate, rec); err != nil {
		fmt.Fprintln(out, auditUnavailable)
		return 1
	}
	if err := s.updateShells(ctx, decide); err != nil {
		return refuse(ev, r, fmt.Errorf("storing it failed, nothing changed: %w", err))
	}
	switch {
	case ev == audit.EventShellRevoke:
		n := s.endShells(r.ID, "the grant was revoked by "+id.User)
		fmt.Fprintf(out, "revoked %s (%s on %s); %d live shells closed\n", r.ID, r.User, r.Node, n)
	case ev == audit.EventShellDeny:
		fmt.Fprintf(out, "denied %s (%s on %s)\n", r.ID, r.User, r.Node)
	case granted:
		fmt.Fprintf(out, "approved %s: %s may open a shell on %s until %s\n", r.ID, r.User, r.Node, r.Expires.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(out, "approved %s: %d of %d approvals\n", r.ID, len(r.Approvals), r.Needed)
	}
	s.notifyShell(string(ev), r, id.User)
	return 0
}

// shellRequest files a request.
func (s *Server) shellRequest(ctx ssh.Context, id *Identity, cfg *config.Config, pos []string, flags map[string]string, out *bytes.Buffer,
	refuse func(audit.Event, *policy.ShellRequest, error) uint32) uint32 {
	if len(pos) != 1 {
		return refuse(audit.EventShellRequest, nil, errors.New("usage: shell-request NODE --reason TEXT [--for 30m]"))
	}
	n := cfg.NodeByName(pos[0])
	if n == nil {
		return refuse(audit.EventShellRequest, nil, fmt.Errorf("%s is not a configured node (ssh bastion nodes lists yours)", pos[0]))
	}
	if !cfg.ShellRight(id.Roles(), n.Cluster, config.ShellRequest) {
		return refuse(audit.EventShellRequest, nil, fmt.Errorf("none of your roles (%s) may request shells on cluster %s (roles.NAME.shell: request)",
			strings.Join(id.Roles(), ", "), n.Cluster))
	}
	var d time.Duration
	if v := flags["for"]; v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return refuse(audit.EventShellRequest, nil, fmt.Errorf("--for %q is not a duration such as 30m", v))
		}
	}
	now := s.now()
	r, err := policy.NewShellRequest(id.User, n.Name, n.Cluster, flags["reason"], d, cfg.BreakGlass.MaxDuration, cfg.BreakGlass.Approvals, now)
	if err != nil {
		return refuse(audit.EventShellRequest, nil, err)
	}
	if err := s.aud.Record(ctx, audit.Gate, s.shellRecord(ctx, id, audit.EventShellRequest, audit.DecisionAllow, r.Reason, r)); err != nil {
		fmt.Fprintln(out, auditUnavailable)
		return 1
	}
	if err := s.updateShells(ctx, func(b *policy.ShellBook) error { return b.Add(r, now) }); err != nil {
		return refuse(audit.EventShellRequest, r, fmt.Errorf("storing it failed: %w", err))
	}
	s.notifyShell(string(audit.EventShellRequest), r, id.User)
	fmt.Fprintf(out, "requested a %s shell on %s: %s\n", r.For, r.Node, r.Reason)
	fmt.Fprintf(out, "it needs %d approval(s) from engineers whose role may approve shells on %s; they run:\n", r.Needed, r.Cluster)
	fmt.Fprintf(out, "  ssh %s shell-approve %s\n", s.sshHost(ctx), r.ID)
	fmt.Fprintf(out, "once approved, open it with: ssh -t %s shell %s\n", s.sshTarget(ctx, id), r.Node)
	fmt.Fprintln(out, r.ID)
	return 0
}

func writeShellList(out *bytes.Buffer, list []*policy.ShellRequest, now time.Time, grants bool) {
	if len(list) == 0 {
		if grants {
			fmt.Fprintln(out, "no active shell grants")
		} else {
			fmt.Fprintln(out, "no pending shell requests you may approve")
		}
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if grants {
		fmt.Fprintln(tw, "ID\tUSER\tNODE\tEXPIRES\tLEFT\tREASON")
	} else {
		fmt.Fprintln(tw, "ID\tUSER\tNODE\tFOR\tAPPROVALS\tREASON")
	}
	for _, r := range list {
		if grants {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.User, r.Node, r.Expires.UTC().Format(time.RFC3339), r.Expires.Sub(now).Round(time.Second), oneLine(r.Reason))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\n", r.ID, r.User, r.Node, r.For, len(r.Approvals), r.Needed, oneLine(r.Reason))
		}
	}
	tw.Flush()
}

// notifyShell posts a break-glass event to break_glass.webhook, in the
// background, bounded; a failure is logged.
func (s *Server) notifyShell(event string, r *policy.ShellRequest, by string) {
	url := s.conf().BreakGlass.Webhook
	if url == "" {
		return
	}
	body, _ := json.Marshal(map[string]any{
		"event": event, "id": r.ID, "user": r.User, "node": r.Node, "cluster": r.Cluster, "reason": r.Reason,
		"for": r.For.String(), "by": by, "approvals": len(r.Approvals), "needed": r.Needed,
		"expires": r.Expires, "text": fmt.Sprintf("beamgate: %s: %s on %s (%s) by %s", event, r.User, r.Node, r.Reason, by),
	})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := webhookClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			s.log.Warn("break-glass webhook failed", zap.String("event", event), zap.String("request", r.ID), zap.Error(err))
		}
	}()
}

// webhookClient never follows redirects (the configured URL is the only
// destination) and never uses a proxy from the environment.
var webhookClient = &http.Client{
	Transport:     &http.Transport{Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// CancelShells ends every pending request and active grant of user in
// store (offboarding) and returns them. Their live shells end with the
// user's SSH connections, which the revocation cuts on every replica.
func CancelShells(ctx context.Context, store cookies.DocStore, user, by, reason string, now time.Time) ([]*policy.ShellRequest, error) {
	var out []*policy.ShellRequest
	err := cookies.UpdateDoc(ctx, store, func(doc []byte) ([]byte, error) {
		b, err := decodeShells(doc)
		if err != nil {
			return nil, err
		}
		out = b.CancelUser(user, by, reason, now)
		return json.Marshal(b)
	})
	return out, err
}

// shellSweep is how often a gateway looks for expired break-glass
// requests to audit.
const shellSweep = 15 * time.Second

// sweepShells audits every break-glass expiry once: the gateway whose
// check-and-set marks it noted writes the record.
func (s *Server) sweepShells(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var due []*policy.ShellRequest
		err := s.updateShells(ctx, func(b *policy.ShellBook) error {
			due = b.NoteExpiries(s.now())
			if len(due) == 0 {
				return errNothingDue
			}
			return nil
		})
		if err != nil {
			continue // nothing due, or the store is away: next round
		}
		for _, r := range due {
			what := "the grant ran out"
			if r.Granted.IsZero() {
				what = "nobody approved it in time"
			}
			rec := &audit.Record{Event: audit.EventShellExpire, User: r.User, Target: r.Node, Cluster: r.Cluster, Decision: audit.DecisionInfo, Reason: what,
				Detail: map[string]string{"request": r.ID, "for": r.For.String()}}
			if !r.Expires.IsZero() {
				rec.Detail["expires"] = r.Expires.UTC().Format(time.RFC3339)
			}
			s.aud.Record(ctx, audit.After, rec)
		}
	}
}

// errNothingDue stops updateShells from writing an unchanged book.
var errNothingDue = errors.New("nothing due")

// shellGrantOf is the relay's view of user's break-glass grants (nil
// without a store): whether one is active on a node now.
func (s *Server) shellGrantOf(user string) func(node string) (relay.ShellGrant, bool) {
	if s.opts.Shells == nil {
		return nil
	}
	return func(node string) (relay.ShellGrant, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := s.loadShells(ctx)
		if err != nil {
			return relay.ShellGrant{}, false // fail closed
		}
		g := b.Grant(user, node, s.now())
		if g == nil {
			return relay.ShellGrant{}, false
		}
		return relay.ShellGrant{ID: g.ID, Expires: g.Expires}, true
	}
}
