# Policy for gateway replicas that only serve sessions: they read
# production cookies (newest and previous version) and watch the
# revocation list; they write only their audit checkpoints and the
# break-glass requests engineers file and approve through them. Rotation
# and offboarding run with beamgate-gateway.hcl.

path "secret/data/beamgate/clusters/*" {
  capabilities = ["read"]
}

path "secret/data/beamgate/revocations" {
  capabilities = ["read"]
}

# The gateway-cookie secret every replica derives engineers' cookies from
# (read only: a replica with this policy needs it created first, by
# `beamgate cookie rotate-gateway-secret` or a gateway with
# beamgate-gateway.hcl).
path "secret/data/beamgate/gateway-secret" {
  capabilities = ["read"]
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
