#!/usr/bin/env bash
# build.sh DEST — build the envtest binaries (kube-apiserver, etcd) and
# kube-controller-manager (the Job controller, the garbage collector and the
# quota controller the Job tests run against) from the Go module proxy into
# DEST/bin, for KUBEBUILDER_ASSETS=DEST/bin.
#
# Needs only Go and the module proxy (GOPROXY): kube-apiserver comes from
# k8s.io/kubernetes v1.37.2 with its staging modules replaced by the published
# k8s.io/<name> v0.37.2, etcd from go.etcd.io/etcd/server/v3 (see go.mod next
# to this script). The first run takes ~10-15 minutes on 2 cores; DEST/stamp
# records what was built, and a run that finds a matching stamp and every
# binary returns at once (with a matching stamp, only missing binaries are
# built). Delete DEST to force a rebuild.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
	echo "usage: $0 DEST   (for example: $0 \"\$HOME/.cache/expsync/envtest\")" >&2
	exit 2
fi
dest=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

kube_version=v1.37.2
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$here/go.mod")
export GOTOOLCHAIN=local
# The stamp names everything that changes the binaries: the pinned versions,
# the module requirements (go.mod; go.sum only records their hashes), the
# toolchain and the platform.
stamp="kubernetes=$kube_version etcd=$etcd_version $(go env GOVERSION GOOS GOARCH | tr '\n' ' ')gomod=$(sha256sum <"$here/go.mod" | cut -c1-16)"

binaries=(etcd kube-apiserver kube-controller-manager)
missing=()
for b in "${binaries[@]}"; do
	[[ -x "$dest/bin/$b" ]] || missing+=("$b")
done
if [[ -f "$dest/stamp" && "$(cat "$dest/stamp")" == "$stamp" ]]; then
	if ((${#missing[@]} == 0)); then
		echo "envtest binaries up to date in $dest/bin ($stamp)"
		exit 0
	fi
else
	missing=("${binaries[@]}")
fi

mkdir -p "$dest/bin"
cd "$here"
# -mod=mod: go.sum is committed, but if it misses an entry on some platform
# (a build-tag-specific dependency) the go command may add it instead of
# failing; the module proxy and checksum database still verify every module.
# GOWORK=off: a go.work above the checkout must not pull this module in.
# GOFLAGS from the caller (e.g. -buildvcs=false) are kept.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" GOWORK=off CGO_ENABLED=0

# Tag the binary like a release build so `kube-apiserver --version` and
# /version report v1.37.2 instead of v0.0.0-master.
minor=${kube_version#v1.}
minor=${minor%%.*}
version_pkg=k8s.io/component-base/version
kube_ldflags="-s -X $version_pkg.gitVersion=$kube_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor -X $version_pkg.gitTreeState=clean"

build() { # build OUTPUT PACKAGE LDFLAGS
	local started=$SECONDS tmp
	echo "building $1 from $2 ..."
	# A private temporary name and a rename: two builds running at once
	# (parallel CI jobs sharing a cache) never see a half-written binary.
	tmp=$(mktemp "$dest/bin/.$1.XXXXXX")
	go build -trimpath -ldflags="$3" -o "$tmp" "$2"
	chmod 0755 "$tmp"
	mv -f "$tmp" "$dest/bin/$1"
	echo "built $dest/bin/$1 in $((SECONDS - started))s"
}

rm -f "$dest/stamp"
for b in "${missing[@]}"; do
	case $b in
	etcd) build etcd go.etcd.io/etcd/server/v3 "-s" ;;
	*) build "$b" "k8s.io/kubernetes/cmd/$b" "$kube_ldflags" ;;
	esac
done
# sed, not head: head exits after one line and etcd, still writing, dies of
# SIGPIPE, which pipefail turns into a failed build with no stamp.
"$dest/bin/etcd" --version | sed -n 1p
"$dest/bin/kube-apiserver" --version
"$dest/bin/kube-controller-manager" --version
echo "$stamp" >"$dest/.stamp.$$"
mv -f "$dest/.stamp.$$" "$dest/stamp"
echo "envtest binaries ready: KUBEBUILDER_ASSETS=$dest/bin"
