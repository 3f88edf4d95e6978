package relay

import "beamgate/policy"

// KnownAtoms returns the atom set the relay keeps for target (a node
// name): atoms production is known to have, shared by every session and
// every gateway-made call to that node, so that the policy's atom budget
// is spent once per node.
func (r *Relay) KnownAtoms(target string) *policy.AtomSet { return r.knownAtoms(target) }
