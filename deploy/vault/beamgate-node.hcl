# Policy for the Vault Agent on a production node of cluster "prismatic":
# read that cluster's cookie only. Make one per cluster.
path "secret/data/beamgate/clusters/prismatic" {
  capabilities = ["read"]
}
