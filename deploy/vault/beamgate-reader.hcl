# Policy for gateway replicas that only serve sessions: they read
# production cookies (newest and previous version) and watch the
# revocation list, and can change nothing. Rotation and offboarding run
# with beamgate-gateway.hcl.

path "secret/data/beamgate/clusters/*" {
  capabilities = ["read"]
}

path "secret/data/beamgate/revocations" {
  capabilities = ["read"]
}
