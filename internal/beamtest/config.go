package beamtest

// ExampleKey is a real ed25519 public key (alice@laptop) for test
// configurations that never log in with it.
const ExampleKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKAd20RvmvISazwA72prLYb5SoFzxyCCaxh2UCkw0X12 alice@laptop"

// ExampleConfig is a small valid configuration: one cluster of one node,
// user alice (ExampleKey) in an enforce-mode readonly role, a file cookie
// store, relative state paths.
const ExampleConfig = `
listen: 127.0.0.1:2222
host_key: ./state/ssh_host_ed25519_key
audit:
  path: ./state/audit.jsonl
cookies:
  backend: file
  file: ./state/cookies.yaml
clusters:
  prismatic:
    nodes:
      - name: prismatic@prod-01
        dial: 10.0.0.5
        gateway_port: 4370
users:
  alice:
    keys: ["` + ExampleKey + `"]
    roles: [observer]
user_ca_keys: []
roles:
  observer:
    clusters: [prismatic]
    policy: readonly
    mode: enforce
`
