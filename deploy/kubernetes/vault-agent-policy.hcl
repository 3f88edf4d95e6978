# Policy "beamgate-agent" for the Vault Agent injected into beamgate's pods
# (deployment.yaml). It logs in with Kubernetes auth, as the beamgate
# service account, and renders only what beamgate needs to log in itself:
# the AppRole's role id, a fresh secret id and the shared SSH host key. beamgate's own token (AppRole beamgate, policy
# deploy/vault/beamgate-reader.hcl) reads the cookies; this one cannot.

path "auth/approle/role/beamgate/role-id" {
  capabilities = ["read"]
}

# Generating a SecretID is an update on this path.
path "auth/approle/role/beamgate/secret-id" {
  capabilities = ["update"]
}

path "secret/data/beamgate/ssh-host-key" {
  capabilities = ["read"]
}
