# Policy for reviewers who verify audit logs (`beamgate audit verify`):
# the public half of the checkpoint key and every replica's latest
# checkpoint, with its version history. Nothing can be signed or changed.

path "transit/keys/beamgate-audit" {
  capabilities = ["read"]
}

path "secret/data/beamgate/audit/checkpoints/*" {
  capabilities = ["read"]
}

path "secret/metadata/beamgate/audit/checkpoints/*" {
  capabilities = ["read", "list"]
}
