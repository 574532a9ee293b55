// Package chart tests charts/expsync, its Flux and Kueue examples and the
// deployment docs with Helm's own Go packages, in a module of its own so
// that expsync's module never imports Helm:
//
//   - lint (Helm's linter, strict) and rendering of the default values and of
//     every documented values example (charts/expsync/examples, the
//     HelmRelease of examples/flux), schema and template checks of hostile
//     values (a tag instead of a digest, a negative QPS, two replicas
//     without leader election, ...), each failing with a message that says
//     what to change (chart_test.go);
//   - what must equal what the code generates: the CRDs (config/crd/bases),
//     the RBAC rules (config/rbac, from the controller's markers), the
//     controller's flags (parsed with `expsync controller`'s own FlagSet)
//     (generated_test.go);
//   - every rendered object created server-side on a real kube-apiserver
//     (envtest, hack/envtest/build.sh) in namespaces enforcing Pod Security
//     "restricted": all accepted, none with a warning (apiserver_test.go);
//   - the RBAC proof: the real controller binary with the chart's args and
//     only its ServiceAccount's permissions reconciles a repository to
//     Ready (rbac_proof_test.go);
//   - examples/flux on Flux's CRDs (flux_test.go);
//   - the reference sections of docs/helm.md and docs/reference/*.md,
//     generated from values.yaml, the CRD, api/v1alpha1 and internal/deploy
//     (reference_test.go, reference_files_test.go; -update rewrites them);
//   - every command of the user docs (README.md, docs/, examples/), run from
//     the Markdown in a scenario of a remote, its results and keys
//     (docs_commands_test.go, docs_scenario_test.go);
//   - the chart published as an OCI artifact (release, `make chart-push`)
//     and fetched back as Flux's source-controller does with
//     examples/flux/source.yaml (publish_test.go).
//
// Run with `make test-chart`, or:
//
//	cd hack/tools/chart && KUBEBUILDER_ASSETS=~/.cache/expsync/envtest/bin go test ./...
package chart
