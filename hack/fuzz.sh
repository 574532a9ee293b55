#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each (CI uses the
# default; `make fuzz FUZZTIME=5m` for a real session). Targets are listed as
# package:FuzzName; add yours below.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-10s}"
targets=(
  ./api/v1alpha1:FuzzLoad
  ./render:FuzzTemplate
  ./render:FuzzRenderJob
  ./render:FuzzRunIDFromLabelValue
  ./contract:FuzzCanonical
  ./tree:FuzzClean
  ./tree:FuzzTreeIDWithout
  ./tree:FuzzIgnorePattern
  ./gitsource:FuzzRedactURL
  ./gitsource:FuzzValidateURLRefusesHelpers
  ./gitsource:FuzzVerifySSHSignature
  ./attest:FuzzVerifyEnvelope
  ./attest:FuzzParseEnvelope
  ./attest:FuzzParseStatement
  ./attest:FuzzValidJSON
  ./runner:FuzzParseMetrics
  ./runner:FuzzRedact
  ./executor/local:FuzzJournalReplay
  ./results:FuzzParseRecord
  ./results:FuzzMetrics
  ./results:FuzzRenderExperiment
  ./cmd/expsync:FuzzServeConfig
)
for t in "${targets[@]}"; do
  pkg="${t%%:*}" name="${t##*:}"
  echo "== fuzz $pkg $name ($fuzztime)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done
echo "fuzzed ${#targets[@]} targets for $fuzztime each"
