// Package deploy assembles a deployment of expsync: everything that stays
// the same across reconciles — the store, the signing keys, the executor,
// the Git settings of each watched repository (credentials, commit
// verification, the key that signs results commits) and the
// reconcile.Reconciler that ties them together. `expsync run`, `expsync
// serve` and `expsync controller` build their deployment here, so a setting
// means the same in each; the commands only parse flags and print.
//
// A deployment is configured in one of three ways, all resolved here:
//
//   - serve's YAML file: Config, read by LoadConfig (defaults, validation);
//   - run's flags, which fill the same types for one repository;
//   - an ExperimentRepository object, whose spec mirrors RepositoryConfig and
//     whose Git Secret uses Flux GitRepository's keys (AuthFromSecret).
//
// Each repository becomes a gitsource.Repository through
// RepositoryConfig.Repository, given its Credentials however they were
// read. Open builds the rest: by default the local executor and a signing
// key file (or KMS URI); Options.Executor and Options.LoadSigner plug in
// another executor (the controller's Kubernetes Jobs) and another key
// source (a Secret).
package deploy
