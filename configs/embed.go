// Package configs holds beamgate's shipped configuration: the example
// gateway configuration and the built-in policy profiles, which the binary
// embeds so that `policy: readonly` works without any file on disk.
package configs

import "embed"

// Policies holds the built-in policy profiles, policy/<name>.yaml.
//
//go:embed policy/*.yaml
var Policies embed.FS
