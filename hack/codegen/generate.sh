#!/usr/bin/env bash
# Generates the ExperimentRepository CRD (config/crd/bases) and the deepcopy
# methods of its Go types (api/v1alpha1/zz_generated.deepcopy.go) with the
# controller-gen pinned in hack/tools/codegen, or checks that the committed
# ones are current.
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
if [[ "${1:-}" == "--verify" ]]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  out_object="$tmp/object"
  out_crd="$tmp/crd"
fi

# Only types marked +kubebuilder:object:generate=true get deepcopy methods:
# the experiment file types of the same package stay plain.
"$gen" object paths=./api/v1alpha1/... output:object:dir="$out_object"
"$gen" crd paths=./api/v1alpha1/... output:crd:dir="$out_crd"

if [[ "${1:-}" == "--verify" ]]; then
  stale=0
  diff -u api/v1alpha1/zz_generated.deepcopy.go "$out_object/zz_generated.deepcopy.go" || stale=1
  diff -ru config/crd/bases "$out_crd" || stale=1
  if ((stale)); then
    echo "generated CRD or deepcopy code is stale: run 'make generate' and commit the result" >&2
    exit 1
  fi
  echo "generated CRD and deepcopy code are current"
fi
