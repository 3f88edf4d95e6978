package cookies

import "context"

// PreviousProductionCookie returns the cookie of the KV version before
// cluster's current one, for the window of a rotation in which some nodes
// may still run it (Source). It is "" when there is no
// earlier version or it was deleted.
func (s *VaultStore) PreviousProductionCookie(ctx context.Context, cluster string) (string, error) {
	_, prev, err := s.ProductionCookies(ctx, cluster)
	if err != nil {
		return "", err
	}
	return prev, nil
}
