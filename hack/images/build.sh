#!/usr/bin/env bash
# build.sh OUT — make the real-node tier's OCI image archives in OUT (no
# registry, no Docker engine): pause (the pod sandbox), expsync (the runner's
# init container and the controller), busybox and python (what
# examples/experiments runs). Prints each image's digest and writes
# OUT/images.env (PAUSE_IMAGE=expsync.local/pause@sha256:..., ...) and
# OUT/images.json. Load them with hack/cluster/cluster.sh (it calls this).
#
# Inputs, and so the digests, are: the Debian packages below at the
# versions apt offers (downloaded once into $EXPSYNC_CACHE/images/debs), the
# expsync binary built from this checkout (CGO_ENABLED=0, -trimpath: the
# checkout's path does not matter, its commit does) and the pause program.
# Same inputs, same digests: every layer is uncompressed and written with
# fixed owners and times (see main.go).
set -euo pipefail
export GOTOOLCHAIN=local GOWORK=off

out=${1:?usage: $0 OUT}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${EXPSYNC_CACHE:-$HOME/.cache/expsync}/images
mkdir -p "$out/bin" "$cache/debs"
out=$(cd "$out" && pwd)

# What the images are made of. python3.11-minimal and its standard library
# with the libraries the interpreter links (libc6, zlib1g, libexpat1);
# busybox-static with dash and mawk (Debian's static busybox has no awk
# math, and its sh prefers its own awk); ca-certificates for the expsync image.
packages=(busybox-static dash mawk python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 zlib1g libexpat1 ca-certificates)

# Download the version apt offers now, once; an offline machine uses what it
# has cached (the newest file of each package).
debs=()
: >"$out/packages.txt"
for p in "${packages[@]}"; do
	v=$(apt-cache show --no-all-versions "$p" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
	file=""
	if [[ -n "$v" ]]; then
		file=$(ls "$cache/debs/${p}_${v//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
		if [[ -z "$file" ]]; then
			(cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root "$p=$v" >/dev/null)
			file=$(ls "$cache/debs/${p}_${v//:/%3a}_"*.deb | head -1)
		fi
	else
		file=$(ls -t "$cache/debs/${p}_"*.deb 2>/dev/null | head -1 || true)
	fi
	if [[ -z "$file" ]]; then
		echo "build.sh: no package $p: run apt-get update" >&2
		exit 1
	fi
	debs+=("$file")
	echo "$p $(dpkg-deb -f "$file" Version)" >>"$out/packages.txt"
done

root=$(mktemp -d "$out/.debs.XXXXXX")
trap 'rm -rf "$root"' EXIT
for f in "${debs[@]}"; do
	dpkg-deb -x "$f" "$root"
done

(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/bin/pause" ./pause)
(cd "$here" && go build -o "$out/bin/images" .)
# Stripped (-s -w: no symbol table or DWARF; stack traces keep their
# function names). GOFLAGS from the caller (-buildvcs=false in CI clones
# without .git) are kept.
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/bin/expsync" ./cmd/expsync)

# Kueue's image when hack/cluster/build-kueue.sh built its controller.
kueue=()
kueue_dir=${EXPSYNC_CACHE:-$HOME/.cache/expsync}/kueue
if [[ -x $kueue_dir/bin/kueue && -f $kueue_dir/version ]]; then
	kueue=(-kueue "$kueue_dir/bin/kueue" -kueue-version "$(<"$kueue_dir/version")")
fi

"$out/bin/images" -debs "$root" -packages "$out/packages.txt" \
	-expsync "$out/bin/expsync" -pause "$out/bin/pause" "${kueue[@]}" -out "$out"
