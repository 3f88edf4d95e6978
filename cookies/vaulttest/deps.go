package vaulttest

import (
	_ "github.com/hashicorp/vault-plugin-secrets-kv"
	_ "github.com/hashicorp/vault/builtin/credential/approle"
	_ "github.com/hashicorp/vault/http"
	_ "github.com/hashicorp/vault/vault"
)
