#!/usr/bin/env bash
# e2e.sh — the real-node tier (`make e2e`): prepare the node's binaries,
# record the host, bring the cluster up (twice: the second must find it up
# and do nothing), run test/e2e against it, bring it down (twice: the second
# finds nothing to do) and prove with check-clean.sh that the host is as it
# was. E2E_BENCH=1 also runs the latency benchmarks (make e2e-bench).
#
# Logs of a failed run are kept in $EXPSYNC_E2E_ARTIFACTS (default a
# temporary folder, printed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export GOTOOLCHAIN=local
export EXPSYNC_CLUSTER_DIR=${EXPSYNC_CLUSTER_DIR:-/tmp/expsync-cluster}
dir=$EXPSYNC_CLUSTER_DIR
artifacts=${EXPSYNC_E2E_ARTIFACTS:-$(mktemp -d /tmp/expsync-e2e.XXXXXX)}
mkdir -p "$artifacts"
cd "$repo"

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }
timed() { # timed LABEL COMMAND...: run, and record how long it took
	local label=$1 started=$SECONDS
	shift
	"$@"
	printf '%-12s %4ss\n' "$label" "$((SECONDS - started))" >>"$artifacts/timings"
}

step "hack/images: unit tests (its own module)"
(cd hack/images && GOWORK=off go test -count=1 ./...)
step "prepare: packages and binaries (cached)"
timed prepare "$here/cluster.sh" prepare
# helm installs the controller from charts/expsync (the controller tier).
tools=${TOOLS_DIR:-$HOME/.cache/expsync/tools}
timed helm "$repo/hack/tools/build-codegen.sh" "$tools" helm
export EXPSYNC_HELM=$tools/helm
# One node per machine, one make e2e at a time: a second one waits here for
# the first; a node someone brought up by hand (hack/cluster/up) is theirs
# until they bring it down (waited for, EXPSYNC_E2E_WAIT minutes); one an
# earlier make e2e left (it died) or of unknown origin is brought down.
exec 8>"$dir.e2e.lock"
if ! flock -n 8; then
	step "another make e2e is using the node ($(cat "$dir.e2e.owner" 2>/dev/null || echo unknown)): waiting for it"
	flock 8
fi
echo "make e2e from $repo (pid $$) since $(date -u +%FT%TZ)" >"$dir.e2e.owner"
export EXPSYNC_CLUSTER_OWNER="make e2e from $repo (pid $$)"
owner=$(cat "$dir/owner" 2>/dev/null || true)
if [[ -d $dir && -n $owner && $owner != "make e2e "* ]]; then
	step "the node in $dir was brought up by hand ($owner): waiting up to ${EXPSYNC_E2E_WAIT:-60} min for its hack/cluster/down"
	deadline=$((SECONDS + ${EXPSYNC_E2E_WAIT:-60} * 60))
	while [[ -d $dir ]] && ((SECONDS < deadline)); do sleep 15; done
	if [[ -d $dir ]]; then
		echo "e2e: the node brought up by hand ($owner) is still up; bring it down with hack/cluster/down when nobody uses it" >&2
		exit 1
	fi
fi
if [[ -d $dir ]]; then
	step "a cluster is already up in $dir (${owner:-left by an earlier run}): bringing it down first"
	"$here/cluster.sh" down
fi
"$here/check-clean.sh" snapshot "$artifacts/host-before"

teardown() {
	local rc=$?
	if ((rc != 0)) && [[ -d $dir/logs ]]; then
		cp -r "$dir/logs" "$artifacts/cluster-logs" 2>/dev/null || true
		echo "e2e: failed; the cluster's logs are in $artifacts/cluster-logs"
	fi
	step "down"
	"$here/cluster.sh" down || rc=1
	exit "$rc"
}
trap teardown EXIT

step "up"
timed up "$here/cluster.sh" up
step "up again (must find it up and do nothing)"
started=$SECONDS
"$here/cluster.sh" up
if ((SECONDS - started > 10)); then
	echo "e2e: a second up took $((SECONDS - started))s: it did not find the cluster up" >&2
	exit 1
fi
# shellcheck disable=SC1091
source "$dir/env"

step "go test ./test/e2e"
export EXPSYNC_E2E=1
started=$SECONDS
set +e
go test -count=1 -timeout 30m -v ./test/e2e/ 2>&1 | tee "$artifacts/e2e.log"
rc=${PIPESTATUS[0]}
set -e
printf '%-12s %4ss\n' "test/e2e" "$((SECONDS - started))" >>"$artifacts/timings"
((rc == 0)) || exit "$rc"
if [[ ${E2E_BENCH:-} == 1 ]]; then
	step "benchmarks"
	go test -count=1 -timeout 60m -run '^$' -bench TrivialJobLatency -benchtime "${E2E_LATENCY_N:-10}x" ./test/e2e/ | tee "$artifacts/bench.log"
	go test -count=1 -timeout 60m -run '^$' -bench HundredPods -benchtime 1x ./test/e2e/ | tee -a "$artifacts/bench.log"
	go test -count=1 -timeout 60m -run '^$' -bench PushToResults -benchtime "${E2E_LATENCY_N:-10}x" ./test/e2e/ | tee -a "$artifacts/bench.log"
	go test -count=1 -timeout 60m -run '^$' -bench HundredRunCommit -benchtime 1x ./test/e2e/ | tee -a "$artifacts/bench.log"
fi

trap - EXIT
step "down"
timed down "$here/cluster.sh" down
step "down again (nothing to do)"
"$here/cluster.sh" down
"$here/check-clean.sh" snapshot "$artifacts/host-after"
"$here/check-clean.sh" compare "$artifacts/host-before" "$artifacts/host-after"
step "e2e passed"
cat "$artifacts/timings"
