# Policy "beamgate-engineer-observer": lets an engineer have Vault's SSH CA
# sign their own public key with the SSH role "observer"
# (ssh-role-observer.json). Attach it to the Vault group of the engineers
# who may observe production (e.g. group "beamgate-observers"), not to
# individual tokens.
#
# The role decides what the certificate says: the engineer's own login
# name (their auth method's alias name) and the principal
# beamgate-role:observer, valid for 8h (12h at most, the gateway's
# max_cert_validity), with port forwarding. valid_principals may only name
# those two; asking for anything else is refused by the role.
path "ssh/sign/observer" {
  capabilities = ["update"]
}
