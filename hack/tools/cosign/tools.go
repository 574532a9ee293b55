//go:build tools

// Package cosign pins the cosign CLI used as an independent verifier of
// expsync's attestations. It lives in its own module so cosign's large
// dependency graph never enters expsync's go.mod.
package cosign

import _ "github.com/sigstore/cosign/v2/cmd/cosign"
