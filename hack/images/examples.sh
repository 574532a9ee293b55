#!/usr/bin/env bash
# examples.sh IMAGES_ENV OUT — the kubernetes-mode variant of
# examples/experiments for the real node: a copy in OUT whose images are the
# locally built ones (images.env, written by build.sh), pinned by digest.
# python → PYTHON_IMAGE, busybox → BUSYBOX_IMAGE; nothing else changes, so
# the same images give the same files and the same run IDs.
set -euo pipefail
images_env=${1:?usage: $0 IMAGES_ENV OUT}
out=${2:?usage: $0 IMAGES_ENV OUT}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/../../examples/experiments

python=$(awk -F= '$1 ~ /PYTHON_IMAGE$/ { print $2 }' "$images_env")
busybox=$(awk -F= '$1 ~ /BUSYBOX_IMAGE$/ { print $2 }' "$images_env")
[[ -n $python && -n $busybox ]] || { echo "examples.sh: $images_env names no PYTHON_IMAGE or BUSYBOX_IMAGE" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
cp -R "$src/." "$out/"
# Every image line names one of the two; anything else is an image this
# script does not know how to replace: fail rather than run a stale pin.
find "$out" -name '*.yaml' -print0 | while IFS= read -r -d '' f; do
	awk -v py="$python" -v bb="$busybox" -v file="$f" '
	/^[[:space:]]*image:/ {
		indent = substr($0, 1, index($0, "image:") - 1)
		if ($0 ~ /python/) { print indent "image: " py; next }
		if ($0 ~ /busybox/) { print indent "image: " bb; next }
		printf "examples.sh: %s:%d: an image that is neither python nor busybox: %s\n", file, NR, $0 > "/dev/stderr"
		exit 1
	}
	{ print }' "$f" >"$f.new"
	mv "$f.new" "$f"
done
