// Package doccheck holds no code: its test walks every Go package in the
// beamgate tree (both modules: the root and cookies/vaulttest, skipping
// testdata) and fails naming each package that has no package doc comment
// ("// Package x ..." or, for a main package, "// Command x ...").
// `make test` runs it with the rest of the root module's tests.
package doccheck
