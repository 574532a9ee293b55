// Package fleetbench holds what the fleet benchmarks share (`expsync
// serve`'s in cmd/expsync, the controller's in internal/controller): a
// fleet of unchanged bare repositories behind git's own smart HTTP server
// on loopback, the git CLI as the peer of a ref listing, and a process's
// CPU time and resident memory read from /proc. It is not used by expsync
// itself.
package fleetbench
