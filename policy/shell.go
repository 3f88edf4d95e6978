package policy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Break-glass shells: an engineer asks for a time-boxed remote shell on
// one production node, with a reason; other engineers whose roles may
// approve approve or deny it; once approved by enough of them it is a
// grant until it expires or is revoked. A ShellBook holds every request
// of a gateway (all its replicas share one, stored in Vault); its methods
// apply the rules and never do I/O.

// Limits of a ShellBook and its fields.
const (
	MaxShellRequests  = 1000               // requests kept (ended ones go first)
	MaxShellReason    = 500                // bytes of a reason
	ShellKeepEnded    = 7 * 24 * time.Hour // ended requests are kept this long
	DefaultShellFor   = 30 * time.Minute
	DefaultShellMax   = 4 * time.Hour
	shellIDBytes      = 6
	maxShellApprovals = 16
)

// ShellState is where a request is in its life.
type ShellState string

// Request states.
const (
	ShellPending   ShellState = "pending"   // waiting for approvals
	ShellActive    ShellState = "active"    // a grant: the shell may be opened
	ShellDenied    ShellState = "denied"    // an approver said no
	ShellExpired   ShellState = "expired"   // the grant ran out, or nobody approved in time
	ShellRevoked   ShellState = "revoked"   // an approver ended the grant
	ShellCancelled ShellState = "cancelled" // the requester was offboarded or revoked
)

// ShellVerdict is one approver's word, or the end of a request.
type ShellVerdict struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// ShellRequest is one request and, once approved, its grant.
type ShellRequest struct {
	ID        string         `json:"id"`
	User      string         `json:"user"`
	Node      string         `json:"node"`
	Cluster   string         `json:"cluster"`
	Reason    string         `json:"reason"`
	Created   time.Time      `json:"created"`
	For       time.Duration  `json:"for"`       // how long the grant lasts once approved
	Needed    int            `json:"needed"`    // approvals needed (from the configuration at request time)
	Approvals []ShellVerdict `json:"approvals"` // distinct approvers, in order
	Granted   time.Time      `json:"granted,omitzero"`
	Expires   time.Time      `json:"expires,omitzero"` // Granted + For
	Ended     *ShellVerdict  `json:"ended,omitempty"`  // denied, revoked or cancelled
	EndState  ShellState     `json:"end_state,omitempty"`
	// ExpiryNoted is set once a gateway audited the request's expiry.
	ExpiryNoted bool `json:"expiry_noted,omitempty"`
}

// State is where r is at now. A pending request nobody approved expires
// when its grant would have (Created + For): stale requests do not
// linger.
func (r *ShellRequest) State(now time.Time) ShellState {
	switch {
	case r.Ended != nil:
		return r.EndState
	case !r.Granted.IsZero() && now.Before(r.Expires):
		return ShellActive
	case !r.Granted.IsZero():
		return ShellExpired
	case !now.Before(r.Created.Add(r.For)):
		return ShellExpired
	}
	return ShellPending
}

// endedAt is when r stopped mattering (zero while pending or active).
func (r *ShellRequest) endedAt(now time.Time) time.Time {
	switch r.State(now) {
	case ShellPending, ShellActive:
		return time.Time{}
	}
	if r.Ended != nil {
		return r.Ended.At
	}
	if !r.Granted.IsZero() {
		return r.Expires
	}
	return r.Created.Add(r.For)
}

// ShellBook is every break-glass request of a gateway.
type ShellBook struct {
	Requests []*ShellRequest `json:"requests"`
}

// Errors of the break-glass rules; each says what to do.
var (
	ErrShellNotFound    = errors.New("no such shell request")
	ErrShellSelfApprove = errors.New("you cannot approve your own request: another engineer whose role may approve shells must")
	ErrShellNotApprover = errors.New("none of your roles may approve shells (roles.NAME.shell: approve)")
	ErrShellNotPending  = errors.New("the request is not pending")
	ErrShellNotActive   = errors.New("the request is not an active grant")
	ErrShellTooMany     = errors.New("too many open shell requests; ask an approver to deny or revoke old ones")
)

// NewShellRequest validates and builds a request. maxFor caps its
// duration (DefaultShellMax when 0).
func NewShellRequest(user, node, cluster, reason string, d, maxFor time.Duration, needed int, now time.Time) (*ShellRequest, error) {
	if maxFor <= 0 {
		maxFor = DefaultShellMax
	}
	if d == 0 {
		d = min(DefaultShellFor, maxFor)
	}
	switch {
	case reason == "":
		return nil, errors.New("a shell request needs --reason TEXT: say what you must change and why")
	case len(reason) > MaxShellReason:
		return nil, fmt.Errorf("the reason is longer than %d bytes", MaxShellReason)
	case d < time.Minute:
		return nil, fmt.Errorf("--for %s is shorter than 1m", d)
	case d > maxFor:
		return nil, fmt.Errorf("--for %s is longer than the %s this gateway allows (break_glass.max_duration)", d, maxFor)
	}
	if needed < 1 {
		needed = 1
	}
	id, err := newShellID()
	if err != nil {
		return nil, err
	}
	return &ShellRequest{ID: id, User: user, Node: node, Cluster: cluster, Reason: reason, Created: now, For: d, Needed: needed}, nil
}

func newShellID() (string, error) {
	b := make([]byte, shellIDBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "sh-" + hex.EncodeToString(b), nil
}

// Find returns the request with id.
func (b *ShellBook) Find(id string) (*ShellRequest, error) {
	for _, r := range b.Requests {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w %q (shell-requests lists the pending ones, shell-grants the active ones)", ErrShellNotFound, id)
}

// Add files r, dropping ended requests past ShellKeepEnded, and refuses
// past MaxShellRequests open ones.
func (b *ShellBook) Add(r *ShellRequest, now time.Time) error {
	b.Prune(now)
	if len(b.Requests) >= MaxShellRequests {
		return ErrShellTooMany
	}
	b.Requests = append(b.Requests, r)
	return nil
}

// Prune drops requests that ended more than ShellKeepEnded ago.
func (b *ShellBook) Prune(now time.Time) {
	b.Requests = slices.DeleteFunc(b.Requests, func(r *ShellRequest) bool {
		e := r.endedAt(now)
		return !e.IsZero() && now.Sub(e) > ShellKeepEnded
	})
}

// Approve records approver's approval of request id; mayApprove says
// whether approver's roles may approve on the request's cluster. It
// reports whether this approval made it a grant.
func (b *ShellBook) Approve(id, approver string, mayApprove bool, now time.Time) (*ShellRequest, bool, error) {
	r, err := b.Find(id)
	if err != nil {
		return nil, false, err
	}
	switch {
	case r.User == approver:
		return r, false, ErrShellSelfApprove
	case !mayApprove:
		return r, false, fmt.Errorf("%w on cluster %s", ErrShellNotApprover, r.Cluster)
	case r.State(now) != ShellPending:
		return r, false, fmt.Errorf("%w: it is %s", ErrShellNotPending, r.State(now))
	case slices.ContainsFunc(r.Approvals, func(v ShellVerdict) bool { return v.By == approver }):
		return r, false, fmt.Errorf("you approved %s already; it needs %d approvals from different engineers", r.ID, r.Needed)
	case len(r.Approvals) >= maxShellApprovals:
		return r, false, errors.New("too many approvals on one request")
	}
	r.Approvals = append(r.Approvals, ShellVerdict{By: approver, At: now})
	if len(r.Approvals) < r.Needed {
		return r, false, nil
	}
	r.Granted, r.Expires = now, now.Add(r.For)
	return r, true, nil
}

// Deny ends a pending request.
func (b *ShellBook) Deny(id, approver, reason string, mayApprove bool, now time.Time) (*ShellRequest, error) {
	r, err := b.Find(id)
	if err != nil {
		return nil, err
	}
	switch {
	case !mayApprove && r.User != approver:
		return r, fmt.Errorf("%w on cluster %s", ErrShellNotApprover, r.Cluster)
	case r.State(now) != ShellPending:
		return r, fmt.Errorf("%w: it is %s", ErrShellNotPending, r.State(now))
	case reason == "":
		return r, errors.New("shell-deny needs --reason TEXT")
	case len(reason) > MaxShellReason:
		return r, fmt.Errorf("the reason is longer than %d bytes", MaxShellReason)
	}
	r.Ended, r.EndState = &ShellVerdict{By: approver, At: now, Reason: reason}, ShellDenied
	return r, nil
}

// Revoke ends an active grant (or a pending request) at once. Approvers
// may revoke any; the requester may end their own.
func (b *ShellBook) Revoke(id, by string, mayApprove bool, now time.Time) (*ShellRequest, error) {
	r, err := b.Find(id)
	if err != nil {
		return nil, err
	}
	switch {
	case !mayApprove && r.User != by:
		return r, fmt.Errorf("%w on cluster %s, and the request is not yours", ErrShellNotApprover, r.Cluster)
	case r.State(now) != ShellActive && r.State(now) != ShellPending:
		return r, fmt.Errorf("%w: it is %s", ErrShellNotActive, r.State(now))
	}
	r.Ended, r.EndState = &ShellVerdict{By: by, At: now, Reason: "revoked"}, ShellRevoked
	return r, nil
}

// CancelUser ends every pending request and active grant of user (an
// offboarding) and returns them.
func (b *ShellBook) CancelUser(user, by, reason string, now time.Time) []*ShellRequest {
	var out []*ShellRequest
	for _, r := range b.Requests {
		if s := r.State(now); r.User == user && (s == ShellPending || s == ShellActive) {
			r.Ended, r.EndState = &ShellVerdict{By: by, At: now, Reason: reason}, ShellCancelled
			out = append(out, r)
		}
	}
	return out
}

// Grant returns user's active grant on node, if any.
func (b *ShellBook) Grant(user, node string, now time.Time) *ShellRequest {
	for _, r := range b.Requests {
		if r.User == user && r.Node == node && r.State(now) == ShellActive {
			return r
		}
	}
	return nil
}

// Select returns the requests for which keep holds, in filing order.
func (b *ShellBook) Select(keep func(*ShellRequest) bool) []*ShellRequest {
	var out []*ShellRequest
	for _, r := range b.Requests {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// NoteExpiries marks the requests that expired (a grant that ran out, or
// a request nobody approved in time) and were not noted yet, and returns
// them, so that one gateway audits each expiry once.
func (b *ShellBook) NoteExpiries(now time.Time) []*ShellRequest {
	var out []*ShellRequest
	for _, r := range b.Requests {
		if !r.ExpiryNoted && r.State(now) == ShellExpired {
			r.ExpiryNoted = true
			out = append(out, r)
		}
	}
	return out
}
