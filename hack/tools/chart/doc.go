// Package chart tests charts/expsync with Helm's own Go packages, in a
// module of its own so that expsync's module never imports Helm:
//
//   - lint (Helm's linter, strict) and rendering of the default values and of
//     every documented values example (charts/expsync/examples, the
//     HelmRelease of examples/flux), schema and template checks of hostile
//     values (a tag instead of a digest, a negative QPS, two replicas
//     without leader election, ...), each failing with a message that says
//     what to change;
//   - what must equal what the code generates: the CRDs (config/crd/bases),
//     the RBAC rules (config/rbac, from the controller's markers), the
//     controller's flags (parsed with `expsync controller`'s own FlagSet),
//     the dashboard's metric names (the controller's registered series);
//   - every rendered object created server-side on a real kube-apiserver
//     (envtest, hack/envtest/build.sh) in namespaces enforcing Pod Security
//     "restricted": all accepted, none with a warning.
//
// Run with `make test-chart`, or:
//
//	cd hack/tools/chart && KUBEBUILDER_ASSETS=~/.cache/expsync/envtest/bin go test ./...
package chart
