#!/usr/bin/env bash
# kueue-crds.sh DEST — put Kueue's CRDs into DEST, for the Job tests that
# install them into envtest (test/envtest reads $KUBEBUILDER_ASSETS/../kueue-crds).
#
# They ship inside the Go module sigs.k8s.io/kueue (config/components/crd/bases),
# so the module proxy is enough: the module is downloaded (verified against the
# checksum database) and its CRD files copied. DEST/stamp names the version; a
# run that finds it returns at once.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
	echo "usage: $0 DEST   (for example: $0 \"\$HOME/.cache/expsync/envtest/kueue-crds\")" >&2
	exit 2
fi
dest=$1
version=v0.17.0
stamp="kueue=$version"
if [[ -f "$dest/stamp" && "$(cat "$dest/stamp")" == "$stamp" ]]; then
	echo "Kueue CRDs up to date in $dest ($stamp)"
	exit 0
fi
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=
# Outside any module, so no go.mod decides anything.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
dir=$(cd "$scratch" && go mod download -json "sigs.k8s.io/kueue@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [[ -z "$dir" || ! -d "$dir/config/components/crd/bases" ]]; then
	echo "kueue-crds: sigs.k8s.io/kueue@$version has no config/components/crd/bases" >&2
	exit 1
fi
mkdir -p "$dest"
rm -f "$dest"/*.yaml
install -m 0644 "$dir"/config/components/crd/bases/*.yaml "$dest/"
echo "$stamp" >"$dest/stamp"
echo "Kueue $version CRDs in $dest: $(ls "$dest"/*.yaml | wc -l) files"
