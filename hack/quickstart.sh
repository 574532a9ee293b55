#!/usr/bin/env bash
# The README's main command (`make quickstart`): the whole loop on one machine
# with nothing but Go, git and python3 — build expsync, make a throwaway
# signing key, push examples/experiments to a scratch Git remote, run it,
# show the results commit and table, verify every attestation, and
# reproduce one run from its attestation alone.
#
#   hack/quickstart.sh [WORKDIR]     (default: a new temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
# A throwaway key without a passphrase; never do this with a real key.
export EXPSYNC_PASSWORD=""

work="${1:-$(mktemp -d -t expsync-quickstart.XXXXXX)}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
expsync="$work/bin/expsync"
remote="$work/remote.git"
clone="$work/clone"

if [[ -t 1 ]]; then bold=$'\e[1m' dim=$'\e[2m' reset=$'\e[0m'; else bold="" dim="" reset=""; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
# git with an identity of its own, so a fresh machine needs no git config.
g() { git -c user.name="expsync quickstart" -c user.email="quickstart@expsync.invalid" -c init.defaultBranch=main -c commit.gpgsign=false "$@"; }

for tool in go git python3; do
  command -v "$tool" >/dev/null || { echo "quickstart needs $tool on PATH" >&2; exit 2; }
done

step "Building expsync"
CGO_ENABLED=0 go build -o "$expsync" ./cmd/expsync # static, as `make build`
echo "$expsync ($("$expsync" version))"

step "Making a throwaway signing key"
rm -f "$work/key.key" "$work/key.pub"
"$expsync" keygen --key-prefix "$work/key"

step "Creating a scratch Git remote from examples/experiments"
rm -rf "$remote" "$clone"
g init -q --bare "$remote"
g clone -q "$remote" "$clone" 2>/dev/null
cp -R examples/experiments/. "$clone/"
g -C "$clone" add -A
g -C "$clone" commit -q -m "Add the example experiments"
g -C "$clone" push -q origin HEAD:main
echo "remote $remote, experiments commit $(g -C "$clone" rev-parse --short HEAD)"

step "expsync run: plan, run, attest, commit back"
"$expsync" run "$remote" --branch main --key "$work/key.key" \
  --store "$work/store" --state "$work/state" --batch-interval 5s

step "The results commit"
g -C "$clone" pull -q --ff-only origin main
g -C "$clone" log -1 --format='%H%n%an <%ae>%n%n%B' | sed '/^$/N;/^\n$/D'
g -C "$clone" show --stat --format= HEAD | tail -n 1

step "The results table"
cat "$clone/results/README.md" | sed -n '/^| experiment/,$p'
for readme in "$clone"/results/*/README.md; do
  printf '\n%s%s%s\n' "$bold" "${readme#"$clone"/}" "$reset"
  # The table, without the long run-folder links.
  sed -n '/^| run /,$p' "$readme" | sed -E 's/\[`([0-9a-f]+)`\]\([0-9a-f]+\/\)/\1/'
done

step "Verifying every attestation (expsync verify)"
"$expsync" verify --key "$work/key.pub" --repo "$clone" "$clone"/results/*/*/

step "Running again: nothing new, nothing runs"
"$expsync" run "$remote" --branch main --key "$work/key.key" --store "$work/store" --state "$work/state"

step "Reproducing one run from its attestation alone (expsync reproduce)"
# Verified first, rebuilt from what its attestation names (the context tree
# by ID from the clone, inputs by digest), executed afresh and compared bit
# for bit; --write signs a reproduction statement into the run folder.
run_folder=$(ls -d "$clone"/results/pi-montecarlo/*/ | head -n 1)
"$expsync" reproduce --key "$work/key.pub" --store "$work/store" --state "$work/state" \
  --write --signing-key "$work/key.key" "$run_folder"
"$expsync" verify --key "$work/key.pub" --repo "$clone" "$run_folder"

printf '\n%sDone.%s Everything is in %s:\n' "$bold" "$reset" "$work"
printf '  %sclone%s         the repository with its results (open results/*/README.md and plot.svg)\n' "$dim" "$reset"
printf '  %skey.pub%s       the public key reviewers verify with\n' "$dim" "$reset"
printf '  %sstore%s         outputs, logs and the run cache\n' "$dim" "$reset"
