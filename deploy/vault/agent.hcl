# Vault Agent on a production node: log in with the node's AppRole and keep
# the cluster cookie rendered for the next start of the node. Run the agent
# as the node's OS user (here "prismatic"): the file it writes must belong
# to the user the BEAM runs as, or erl refuses the cookie file.
auto_auth {
  method "approle" {
    config = {
      role_id_file_path                   = "/etc/vault-agent/role_id"
      secret_id_file_path                 = "/etc/vault-agent/secret_id"
      remove_secret_id_file_after_reading = true
    }
  }
}

template_config {
  # Keep rendering when Vault is briefly unreachable; the node only reads
  # the file when it starts.
  exit_on_retry_failure = false
  static_secret_render_interval = "1m"
}

template {
  source      = "/etc/vault-agent/node-cookie.ctmpl"
  destination = "/var/lib/prismatic/.erlang.cookie"
  perms       = "0400"
  # No command: a running node already got the new cookie from
  # `beamgate cookie rotate` (erlang:set_cookie/1); restarting it here would
  # be the downtime rotation avoids.
}
