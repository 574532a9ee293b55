#!/usr/bin/env bash
# build.sh DEST — build the node's Kubernetes binaries (kube-scheduler,
# kubelet, kube-proxy, kubectl) into DEST/bin, from the same
# module and pins as the envtest binaries (hack/envtest/go.mod: k8s.io/kubernetes
# with its staging modules replaced by the published k8s.io/<name>). The
# API server, etcd and kube-controller-manager come from hack/envtest/build.sh
# (the envtest tests use them too); building those first
# fills the Go build cache with most of what these need (~3-5 minutes more on
# 2 cores; alone, from nothing, ~15). DEST/stamp records what was built: a run
# that finds a matching stamp returns at once. Delete DEST to force a rebuild.
set -euo pipefail

dest=${1:?usage: $0 DEST   (for example: $0 \"\$HOME/.cache/expsync/cluster\")}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module=$(cd "$here/../envtest" && pwd)

export GOTOOLCHAIN=local
kube_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$module/go.mod")
binaries=(kube-scheduler kubelet kube-proxy kubectl)
stamp="kubernetes=$kube_version binaries=${binaries[*]} $(go env GOVERSION GOOS GOARCH | tr '\n' ' ')gomod=$(sha256sum <"$module/go.mod" | cut -c1-16)"

up_to_date=1
for b in "${binaries[@]}"; do [[ -x "$dest/bin/$b" ]] || up_to_date=0; done
if ((up_to_date)) && [[ -f "$dest/stamp" && "$(cat "$dest/stamp")" == "$stamp" ]]; then
	echo "node binaries up to date in $dest/bin ($stamp)"
	exit 0
fi

mkdir -p "$dest/bin"
cd "$module"
# As hack/envtest/build.sh: -mod=mod tolerates a go.sum missing a
# platform-specific entry (the proxy and checksum database still verify
# every module), GOWORK=off, static binaries, the caller's GOFLAGS kept.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" GOWORK=off CGO_ENABLED=0
minor=${kube_version#v1.}
minor=${minor%%.*}
version_pkg=k8s.io/component-base/version
ldflags="-s -X $version_pkg.gitVersion=$kube_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor -X $version_pkg.gitTreeState=clean"

pkgs=()
for b in "${binaries[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
started=$SECONDS
rm -f "$dest/stamp"
# One go build for all: shared packages compile once, links run in parallel.
# Into a private folder, then renamed: a concurrent reader never sees half a binary.
tmp=$(mktemp -d "$dest/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building ${binaries[*]} ($kube_version) ..."
go build -trimpath -ldflags="$ldflags" -o "$tmp/" "${pkgs[@]}"
for b in "${binaries[@]}"; do
	chmod 0755 "$tmp/$b"
	mv -f "$tmp/$b" "$dest/bin/$b"
done
"$dest/bin/kubelet" --version
echo "$stamp" >"$dest/.stamp.$$"
mv -f "$dest/.stamp.$$" "$dest/stamp"
echo "node binaries ready in $dest/bin ($((SECONDS - started))s)"
