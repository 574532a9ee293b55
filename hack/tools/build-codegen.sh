#!/usr/bin/env bash
# Builds the code and chart tools pinned in hack/tools/codegen/go.mod into
# DEST, once: controller-gen (the ExperimentRepository CRD and deepcopy,
# `make generate` / `make verify`) and helm (the chart's lint and template
# tests). Binaries cannot be downloaded here; both build from the Go module
# proxy (controller-gen ~1 minute, helm ~3 minutes on 2 cores) and are cached
# by version, go.mod and toolchain (DEST/<tool>.version), so later runs return
# at once.
#
# usage: hack/tools/build-codegen.sh DEST [TOOL...]   (e.g. $HOME/.cache/expsync/tools)
#        TOOL: controller-gen, helm (default: both)
set -euo pipefail
export GOTOOLCHAIN=local

dest="${1:?usage: $0 DEST [controller-gen|helm ...]}"
shift
tools=("$@")
((${#tools[@]})) || tools=(controller-gen helm)
here="$(cd "$(dirname "$0")" && pwd)"
module_dir="$here/codegen"
mkdir -p "$dest"

build() { # name module package ldflags
  local name=$1 module=$2 pkg=$3 ldflags=$4 version stamp tmp key
  version="$(cd "$module_dir" && GOWORK=off go list -m -f '{{.Version}}' "$module")"
  stamp="$dest/$name.version"
  # What the binary is made of: the version, every pinned dependency (go.mod)
  # and the toolchain; any change rebuilds (compiles stay in the Go build cache).
  key="$version gomod=$(sha256sum <"$module_dir/go.mod" | cut -c1-16) $(go env GOVERSION GOOS GOARCH | tr '\n' ' ' | sed 's/ $//')"
  if [[ -x "$dest/$name" && -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
    echo "$name $version already built in $dest"
    return
  fi
  echo "building $name $version into $dest"
  tmp="$dest/$name.tmp.$$"
  (cd "$module_dir" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
  mv "$tmp" "$dest/$name"
  echo "$key" >"$stamp"
  echo "$name $version ready: $dest/$name"
}

for t in "${tools[@]}"; do
  case "$t" in
    controller-gen)
      v="$(cd "$module_dir" && GOWORK=off go list -m -f '{{.Version}}' sigs.k8s.io/controller-tools)"
      build controller-gen sigs.k8s.io/controller-tools sigs.k8s.io/controller-tools/cmd/controller-gen \
        "-X sigs.k8s.io/controller-tools/pkg/version.version=$v" ;;
    helm)
      v="$(cd "$module_dir" && GOWORK=off go list -m -f '{{.Version}}' helm.sh/helm/v3)"
      build helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$v" ;;
    *) echo "unknown tool $t (controller-gen, helm)" >&2; exit 2 ;;
  esac
done
