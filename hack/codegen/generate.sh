#!/usr/bin/env bash
# Generates, with the controller-gen pinned in hack/tools/codegen:
#   - the ExperimentRepository CRD (config/crd/bases) and the deepcopy methods
#     of its Go types (api/v1alpha1/zz_generated.deepcopy.go);
#   - the controller's RBAC rules (config/rbac/role.yaml) from the
#     +kubebuilder:rbac markers in internal/controller;
#   - the Helm chart's copies of both (charts/expsync/files/crds,
#     charts/expsync/files/rbac): a chart cannot read files outside its
#     folder, so the chart ships generated copies, never edited by hand;
# or checks that the committed ones are current.
#
# usage: hack/codegen/generate.sh            write them
#        hack/codegen/generate.sh --verify   fail (exit 1, with a diff) when they are stale
set -euo pipefail
export GOTOOLCHAIN=local
cd "$(dirname "$0")/../.."
tools="${TOOLS_DIR:-$HOME/.cache/expsync/tools}"
hack/tools/build-codegen.sh "$tools" controller-gen >/dev/null
gen="$tools/controller-gen"

out_object=api/v1alpha1
out_crd=config/crd/bases
out_rbac=config/rbac
out_chart=charts/expsync/files
if [[ "${1:-}" == "--verify" ]]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  out_object="$tmp/object"
  out_crd="$tmp/crd"
  out_rbac="$tmp/rbac"
  out_chart="$tmp/chart"
fi

# Only types marked +kubebuilder:object:generate=true get deepcopy methods:
# the experiment file types of the same package stay plain.
"$gen" object paths=./api/v1alpha1/... output:object:dir="$out_object"
"$gen" crd paths=./api/v1alpha1/... output:crd:dir="$out_crd"
"$gen" rbac:roleName=expsync-controller paths=./internal/controller/... output:rbac:dir="$out_rbac"

mkdir -p "$out_chart/crds" "$out_chart/rbac"
rm -f "$out_chart"/crds/*.yaml
cp "$out_crd"/*.yaml "$out_chart/crds/"
cp "$out_rbac/role.yaml" "$out_chart/rbac/role.yaml"

if [[ "${1:-}" == "--verify" ]]; then
  stale=0
  diff -u api/v1alpha1/zz_generated.deepcopy.go "$out_object/zz_generated.deepcopy.go" || stale=1
  diff -ru config/crd/bases "$out_crd" || stale=1
  diff -ru config/rbac "$out_rbac" || stale=1
  diff -ru charts/expsync/files/crds "$out_chart/crds" || stale=1
  diff -ru charts/expsync/files/rbac "$out_chart/rbac" || stale=1
  if ((stale)); then
    echo "generated CRD, RBAC, deepcopy code or the chart's copies are stale: run 'make generate' and commit the result" >&2
    exit 1
  fi
  echo "generated CRD, RBAC, deepcopy code and the chart's copies are current"
fi
