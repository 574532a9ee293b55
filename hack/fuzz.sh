#!/usr/bin/env bash
# Runs every fuzz target of the module for a short budget each and sums up.
# The budget is a duration ("10s", "5m") or an execution count ("2000x").
# CI uses a count: with a duration, Go 1.26's fuzz coordinator can report a
# spurious "context deadline exceeded" at the deadline on a loaded machine
# (golang/go#75804, fixed in Go 1.27), while a count has no deadline to race.
# A real finding writes its input to testdata/fuzz/<target>/ and fails.
# Targets are listed as package:FuzzName; add yours below.
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:-10s}"
targets=(
  ./api/v1alpha1:FuzzLoad
  ./render:FuzzTemplate
  ./render:FuzzRenderJob
  ./render:FuzzRunIDFromLabelValue
  ./contract:FuzzCanonical
  ./tree:FuzzClean
  ./tree:FuzzTreeIDWithout
  ./tree:FuzzIgnorePattern
  ./tree:FuzzCheckGitPath
  ./gitsource:FuzzRedactURL
  ./gitsource:FuzzValidateURLRefusesHelpers
  ./gitsource:FuzzVerifySSHSignature
  ./gitsource:FuzzIndexPack
  ./gitsource/internal/gitpack:FuzzApplyDelta
  ./attest:FuzzVerifyEnvelope
  ./attest:FuzzParseEnvelope
  ./attest:FuzzParseStatement
  ./attest:FuzzValidJSON
  ./attest:FuzzParseReproduction
  ./store:FuzzRunJournalScan
  ./internal/runner:FuzzParseMetrics
  ./internal/runner:FuzzRedact
  ./internal/redact:FuzzUserinfo
  ./internal/executor/local:FuzzJournalReplay
  ./internal/executor/kube:FuzzCollect
  ./internal/results:FuzzParseRecord
  ./internal/results:FuzzMetrics
  ./internal/results:FuzzRenderExperiment
  ./internal/results:FuzzFolderSizes
  ./internal/deploy:FuzzServeConfig
  ./internal/diff:FuzzEscapeMarkdown
)
# Every fuzz target of the module must be listed (a new or moved one would
# otherwise never run), and every listed one must exist.
found=$(grep -rl --include='*_test.go' '^func Fuzz' --exclude-dir=hack --exclude-dir=.git . |
  while read -r f; do d=$(dirname "${f#./}"); grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed "s#^func #./$d:#"; done | sort)
listed=$(printf '%s\n' "${targets[@]}" | sort)
if [[ "$found" != "$listed" ]]; then
  echo "hack/fuzz.sh: the target list differs from the module's fuzz targets (< found, > listed):" >&2
  diff <(echo "$found") <(echo "$listed") >&2 || true
  exit 1
fi
passed=0 failed=0 failures=()
for t in "${targets[@]}"; do
  pkg="${t%%:*}" name="${t##*:}"
  echo "== fuzz $pkg $name ($budget)"
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$budget" "$pkg"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)) failures+=("$t")
  fi
done
for t in "${failures[@]}"; do echo "fuzz target failed: $t" >&2; done
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
