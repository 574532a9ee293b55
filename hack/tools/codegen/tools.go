//go:build tools

// Package tools pins the code generators and chart tooling (controller-gen
// for the ExperimentRepository CRD and deepcopy, helm for the chart), in a
// module of their own so they never enter expsync's dependency graph.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
