#!/usr/bin/env bash
# build-gitea.sh [DEST] — build the Gitea pinned below from the Go module proxy
# into DEST/<version>/ (default: ~/.cache/expsync/gitea), once. The forge tests
# (forge/, cmd/expsync's pull-request tier) start it with hack/forge/gitea.sh.
#
# Nothing can be downloaded here but Go modules, and `go install` refuses
# Gitea's module (its go.mod has replace directives), so the module is
# downloaded, copied somewhere writable and built inside. It needs cgo (SQLite)
# and takes about 14 minutes on 2 cores; DEST/<version>/stamp records what was
# built and a run that finds it returns at once. Without the bindata tag Gitea
# reads options/ (locales), templates/ and public/ from its work folder: they
# are kept next to the binary. Delete DEST/<version> to force a rebuild.
set -euo pipefail
export GOTOOLCHAIN=local

version=v1.27.3
dest=${1:-$HOME/.cache/expsync/gitea}
out="$dest/$version"
stamp="gitea=$version $(go env GOVERSION GOOS GOARCH | tr '\n' ' ')tags=sqlite,sqlite_unlock_notify"

if [[ -x "$out/gitea" && -f "$out/stamp" && "$(cat "$out/stamp")" == "$stamp" ]]; then
	echo "gitea $version already built in $out"
	exit 0
fi
command -v gcc >/dev/null || { echo "build-gitea.sh: gcc is needed (Gitea's SQLite driver uses cgo): apt-get install gcc" >&2; exit 1; }

mkdir -p "$dest"
module_dir=$(go mod download -json "code.gitea.io/gitea@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$module_dir" ]] || { echo "build-gitea.sh: go mod download code.gitea.io/gitea@$version gave no folder" >&2; exit 1; }

# A private build folder and a final rename: two builds at once (parallel CI
# jobs sharing a cache) never see half a tree.
work=$(mktemp -d "$dest/.build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$module_dir" "$work/src"
chmod -R u+w "$work/src"

started=$SECONDS
echo "building gitea $version into $out (about 14 minutes on 2 cores, once) ..."
(
	cd "$work/src"
	# main.Version: the SDK asks /api/v1/version and gates features on it; an
	# unset version reads as "development".
	GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" GOWORK=off CGO_ENABLED=1 \
		go build -trimpath -tags "sqlite sqlite_unlock_notify" \
		-ldflags "-s -w -X main.Version=${version#v} -X 'main.Tags=sqlite sqlite_unlock_notify'" \
		-o "$work/out/gitea" .
)
for d in options templates public; do cp -r "$work/src/$d" "$work/out/$d"; done
"$work/out/gitea" --version
echo "$stamp" >"$work/out/stamp"
rm -rf "$out"
mv "$work/out" "$out"
echo "gitea $version ready: $out/gitea (built in $((SECONDS - started))s)"
