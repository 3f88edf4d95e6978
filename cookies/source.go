package cookies

import (
	"context"
	"errors"
	"slices"
)

// Source yields production cookies: *FileStore and *VaultStore implement
// it. Implementations never log a cookie or put one in an error.
type Source interface {
	// ProductionCookie returns the cookie for cluster. fresh asks the
	// source to bypass its cache (after production refused a handshake).
	ProductionCookie(ctx context.Context, cluster string, fresh bool) (string, error)
	// PreviousProductionCookie returns the cookie the cluster used before
	// its latest rotation, for the window in which some nodes may still
	// use it; "" when the source keeps no history (a cookie file) or
	// there is no earlier version.
	PreviousProductionCookie(ctx context.Context, cluster string) (string, error)
}

var (
	_ Source = (*FileStore)(nil)
	_ Source = (*VaultStore)(nil)
)

// ErrNoMoreCookies is returned by Attempts.Next once every cookie worth
// trying was handed out.
var ErrNoMoreCookies = errors.New("cookies: no other production cookie to try")

// Attempts is the one order in which beamgate tries production cookies
// when it dials production, for the relay, the text views and anything
// else that connects: the cached current cookie; after a refusal the
// current cookie read afresh (the cluster may have been rotated since it
// was cached); then, during a rotation, the previous version (a node the
// rotation has not reached yet). No cookie is handed out twice. Use one
// Attempts per connection attempt; it is not safe for concurrent use.
type Attempts struct {
	src     Source
	cluster string
	step    int
	tried   []string
}

// NewAttempts starts the sequence for cluster.
func NewAttempts(src Source, cluster string) *Attempts {
	return &Attempts{src: src, cluster: cluster}
}

// Next returns the next cookie to try. The first call returns the source's
// error as it is (the cluster has no usable cookie); later calls skip a
// source that fails and end with ErrNoMoreCookies.
func (a *Attempts) Next(ctx context.Context) (string, error) {
	for {
		a.step++
		var c string
		var err error
		switch a.step {
		case 1:
			c, err = a.src.ProductionCookie(ctx, a.cluster, false)
			if err != nil {
				return "", err
			}
		case 2:
			c, err = a.src.ProductionCookie(ctx, a.cluster, true)
		case 3:
			c, err = a.src.PreviousProductionCookie(ctx, a.cluster)
		default:
			return "", ErrNoMoreCookies
		}
		if err != nil || c == "" || slices.Contains(a.tried, c) {
			continue
		}
		a.tried = append(a.tried, c)
		return c, nil
	}
}

// Tried returns every cookie Next handed out, so that a caller can scrub
// them from error text it did not write itself.
func (a *Attempts) Tried() []string { return slices.Clone(a.tried) }
