#!/usr/bin/env bash
# thirdparty-crds.sh DEST — the CRDs of the third-party kinds the chart and
# its examples create, for the chart's envtest tests (hack/tools/chart reads
# $KUBEBUILDER_ASSETS/../thirdparty-crds/<name>/):
#   flux:       HelmRelease, HelmRepository, OCIRepository, GitRepository,
#               Alert, Provider, Receiver (examples/flux, docs/flux.md)
#   monitoring: the Prometheus Operator's ServiceMonitor (metrics.serviceMonitor)
#
# Their repositories' root modules are not on the Go module proxy, but their
# API modules are, and those CRDs are generated from exactly these Go types by
# controller-gen; so the API modules are downloaded (checked against the
# checksum database) and the CRDs generated from them with the controller-gen
# pinned in hack/tools/codegen. DEST/stamp names the versions; a run that
# finds it returns at once.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
	echo "usage: $0 DEST   (for example: $0 \"\$HOME/.cache/expsync/envtest/thirdparty-crds\")" >&2
	exit 2
fi
dest=$1
here="$(cd "$(dirname "$0")" && pwd)"
# The newest versions whose go.mod this machine's Go accepts.
modules=(
	"flux github.com/fluxcd/source-controller/api v1.9.6"
	"flux github.com/fluxcd/helm-controller/api v1.6.5"
	"flux github.com/fluxcd/notification-controller/api v1.9.4"
	"monitoring github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring v0.95.2"
)
stamp="controller-gen=$(cd "$here/../tools/codegen" && GOTOOLCHAIN=local GOWORK=off go list -m -f '{{.Version}}' sigs.k8s.io/controller-tools) ${modules[*]}"
if [[ -f "$dest/stamp" && "$(cat "$dest/stamp")" == "$stamp" ]]; then
	echo "third-party CRDs up to date in $dest"
	exit 0
fi
tools="${TOOLS_DIR:-$HOME/.cache/expsync/tools}"
"$here/../tools/build-codegen.sh" "$tools" controller-gen >/dev/null
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
for m in "${modules[@]}"; do
	read -r name path version <<<"$m"
	dir=$(cd "$scratch" && go mod download -json "$path@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n "$dir" && -d "$dir" ]] || { echo "thirdparty-crds: $path@$version did not download" >&2; exit 1; }
	# A writable copy: controller-gen loads the packages with the go
	# command, which may complete go.sum.
	work="$scratch/$(basename "$path")-$version"
	cp -r "$dir" "$work" && chmod -R u+w "$work"
	(cd "$work" && go mod download >/dev/null && "$tools/controller-gen" crd paths=./... output:crd:dir="$dest.tmp/$name")
done
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "$stamp" >"$dest/stamp"
echo "third-party CRDs in $dest: $(ls "$dest"/*/*.yaml | wc -l) files"
