#!/usr/bin/env bash
# Builds the cosign CLI pinned in hack/tools/cosign/go.mod into DEST/cosign,
# once: cosign is an independent verifier of expsync's attestations in the
# interop tests. Binaries cannot be downloaded here; cosign builds from the Go
# module proxy (about 4 minutes on 2 cores) and is cached by version, go.mod and
# toolchain (DEST/cosign.version), so later runs return at once.
#
# usage: hack/tools/build-cosign.sh DEST    (e.g. $HOME/.cache/expsync/tools)
set -euo pipefail
export GOTOOLCHAIN=local

dest="${1:?usage: $0 DEST}"
here="$(cd "$(dirname "$0")" && pwd)"
module_dir="$here/cosign"
version="$(cd "$module_dir" && go list -m -f '{{.Version}}' github.com/sigstore/cosign/v2)"
stamp="$dest/cosign.version"
# What the binary is made of: the version, every pinned dependency (go.mod)
# and the toolchain; any change rebuilds (compiles stay in the Go build cache).
key="$version gomod=$(sha256sum <"$module_dir/go.mod" | cut -c1-16) $(go env GOVERSION GOOS GOARCH | tr '\n' ' ' | sed 's/ $//')"

if [[ -x "$dest/cosign" && -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
  echo "cosign $version already built in $dest"
  exit 0
fi

mkdir -p "$dest"
echo "building cosign $version into $dest (a few minutes on first run)"
tmp="$dest/cosign.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(
  cd "$module_dir"
  go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$version" \
    -o "$tmp" github.com/sigstore/cosign/v2/cmd/cosign
)
mv "$tmp" "$dest/cosign"
echo "$key" >"$stamp"
"$dest/cosign" version >/dev/null 2>&1 || true
echo "cosign $version ready: $dest/cosign"
