# Policy for beamgate processes that rotate cookies and offboard users
# (`beamgate cookie rotate`, `beamgate offboard`), and for gateways that
# run them. KV v2 mount "secret", beamgate's default paths.

# Production cookies: read the newest and the previous version, and write
# a new version with check-and-set during a rotation.
path "secret/data/beamgate/clusters/*" {
  capabilities = ["read", "create", "update"]
}

# Rotation progress, so a crashed rotation can be finished by a later run.
path "secret/data/beamgate/rotations/*" {
  capabilities = ["read", "create", "update"]
}

# The revocation list: read by the watcher, appended to by offboarding.
path "secret/data/beamgate/revocations" {
  capabilities = ["read", "create", "update"]
}

# The gateway-cookie secret: the first replica creates it (check-and-set,
# so replicas starting together agree), every replica re-reads it, and
# `beamgate cookie rotate-gateway-secret` replaces it.
path "secret/data/beamgate/gateway-secret" {
  capabilities = ["read", "create", "update"]
}

# Audit checkpoints: sign the log's head with the Transit key (sign only:
# no read of the key, no export, no deletion), and keep the replica's
# latest checkpoint in KV, outside the bastion's disk. KV v2 keeps every
# version, so a rolled-back checkpoint shows in its history.
path "transit/sign/beamgate-audit" {
  capabilities = ["update"]
}

path "secret/data/beamgate/audit/checkpoints/*" {
  capabilities = ["read", "create", "update"]
}

# Break-glass shell requests and grants (shell-request, shell-approve,
# ...): one document every replica reads and writes with check-and-set.
path "secret/data/beamgate/break-glass" {
  capabilities = ["read", "create", "update"]
}
