// Package vaulttest holds beamgate's tests against a real Vault core run
// in-process (github.com/hashicorp/vault's test cluster). It is its own Go
// module so that the beamgate module and binary never depend on Vault's
// server code.
package vaulttest
