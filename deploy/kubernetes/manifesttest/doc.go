// Package manifesttest checks the Kubernetes manifests in deploy/kubernetes:
// each document decodes strictly (unknown or duplicate fields are errors)
// into its k8s.io/api type, and the deployment keeps the properties the
// README promises (two replicas on two nodes, probes on the ops port, a
// preStop sleep inside the termination grace period, a PodDisruptionBudget,
// egress only to epmd, the distribution range, Vault and DNS).
//
// It is a module of its own so that the gateway's go.mod does not carry
// k8s.io/api; it does not import beamgate.
package manifesttest
