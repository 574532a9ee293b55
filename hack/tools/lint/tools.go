//go:build tools

// Package tools pins the linters `make lint` runs, in a module of their own
// so they never enter expsync's dependency graph.
package tools

import (
	_ "honnef.co/go/tools/cmd/staticcheck"
)
