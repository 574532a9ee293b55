#!/usr/bin/env bash
# build-kueue.sh DEST — build Kueue's controller (sigs.k8s.io/kueue/cmd/kueue)
# at the version of hack/envtest/kueue-crds.sh into DEST/bin/kueue, static,
# from the Go module proxy (~6 minutes on 2 cores, once), and link its Helm
# chart (it ships in the module) as DEST/chart. hack/images makes the image
# expsync.local/kueue:<version> from the binary; test/e2e installs the chart
# with it (TestKueueAdmitsRunsWithinItsQuota). DEST/stamp records what was
# built: a run that finds a matching stamp returns at once.
set -euo pipefail
dest=${1:?usage: $0 DEST   (for example: $0 \"\$HOME/.cache/expsync/kueue\")}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(sed -n 's/^version=\(v[0-9.]*\)$/\1/p' "$here/../envtest/kueue-crds.sh")
[[ -n $version ]] || {
	echo "build-kueue: no version= line in hack/envtest/kueue-crds.sh" >&2
	exit 1
}
export GOTOOLCHAIN=local GOWORK=off GOFLAGS= CGO_ENABLED=0
stamp="kueue=$version $(go env GOVERSION GOOS GOARCH | tr '\n' ' ')"
if [[ -x $dest/bin/kueue && -f $dest/stamp && "$(cat "$dest/stamp")" == "$stamp" && -d $dest/chart ]]; then
	echo "Kueue up to date in $dest ($stamp)"
	exit 0
fi
mkdir -p "$dest/bin"
rm -f "$dest/stamp"
started=$SECONDS
echo "building Kueue $version (a few minutes, once) ..."
# Kueue's go.mod replaces nothing, so `go install module@version` builds it
# exactly as its go.mod pins (verified against the checksum database),
# outside any module of ours.
tmp=$(mktemp -d "$dest/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && GOBIN=$tmp go install -trimpath -ldflags=-s "sigs.k8s.io/kueue/cmd/kueue@$version")
mv -f "$tmp/kueue" "$dest/bin/kueue"
dir=$(cd "$tmp" && go mod download -json "sigs.k8s.io/kueue@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $dir/charts/kueue ]] || {
	echo "build-kueue: sigs.k8s.io/kueue@$version has no charts/kueue" >&2
	exit 1
}
rm -rf "$dest/chart"
cp -r "$dir/charts/kueue" "$dest/chart"
chmod -R u+w "$dest/chart"
echo "$version" >"$dest/version"
echo "$stamp" >"$dest/stamp"
echo "Kueue $version ready in $dest ($((SECONDS - started))s)"
