# expsync — developer entry points. `make test` is the README's test command
# and what .ci/run calls.
SHELL := /bin/bash
export GOTOOLCHAIN := local

# Where the envtest binaries (kube-apiserver, etcd) built from the Go module
# proxy are cached; hack/envtest/build.sh fills it once.
ENVTEST_DIR ?= $(HOME)/.cache/expsync/envtest

.PHONY: build test test-chart chart-push bench bench-e2e bench-fleet lint fuzz envtest gitea quickstart generate verify tools cluster-up cluster-down e2e e2e-bench

# Static and cgo-free, as released: it runs from a distroless/static image
# (controller, `expsync exec` in pods); user lookups and DNS use Go's own
# implementations. It also starts leaner (no libc mapped: ~1 MiB less RSS).
build:
	CGO_ENABLED=0 go build -o bin/expsync ./cmd/expsync

envtest:
	hack/envtest/build.sh "$(ENVTEST_DIR)"
	hack/envtest/kueue-crds.sh "$(ENVTEST_DIR)/kueue-crds"
	hack/envtest/thirdparty-crds.sh "$(ENVTEST_DIR)/thirdparty-crds"

# Gitea v1.27.3 built from the Go module proxy (cgo, ~14 minutes once),
# cached in GITEA_DIR: the real forge of the pull-request tier. `make test`
# does not build it: without it those tests skip saying so, except under
# CI=true, where .ci/run builds it and they must run.
GITEA_DIR ?= $(HOME)/.cache/expsync/gitea
gitea:
	hack/forge/build-gitea.sh "$(GITEA_DIR)"

# A real single-node Kubernetes on this machine (root, Debian 12): etcd,
# kube-apiserver, containerd, kubelet ... built from the Go module proxy
# (cached) and started on a bridge of the host; docs/real-cluster.md.
cluster-up:
	hack/cluster/up
cluster-down:
	hack/cluster/down

# The real-node tier: cluster up, test/e2e (the examples and hostile pods in
# real containers), cluster down, and a check that nothing was left behind.
e2e:
	hack/cluster/e2e.sh
# The same plus the real node's latency figures (a trivial Job beside a bare
# one; 100 rendered Jobs beside 100 bare pods created with kubectl).
e2e-bench:
	E2E_BENCH=1 hack/cluster/e2e.sh

# The README's main command: the whole loop on a scratch Git remote made from
# examples/experiments (run, attest, commit back, verify).
quickstart:
	hack/quickstart.sh

# TEST_TIMEOUT bounds each package's test binary: a guard against a hang,
# not a speed target. cmd/expsync's end-to-end tests take ~20 minutes on a
# 2-core machine shared with other builds (its binary's runs, serve, Gitea),
# so the guard sits above that; .ci/run's 90 minutes bound the whole.
TEST_TIMEOUT ?= 45m
# TEST_JSON=FILE keeps go test's events (-json) in FILE and ends with the
# slowest packages and tests (hack/ci/testlog.py); .ci/run sets it.
TEST_JSON ?=
GO_TEST = go test $(if $(TEST_JSON),-json )
GO_TEST_LOG = $(if $(TEST_JSON),| python3 "$(CURDIR)/hack/ci/testlog.py" "$(abspath $(TEST_JSON))")
test: envtest
	set -o pipefail; KUBEBUILDER_ASSETS="$(ENVTEST_DIR)/bin" $(GO_TEST) -count=1 -timeout $(TEST_TIMEOUT) ./... $(GO_TEST_LOG)
	$(MAKE) test-chart

# The Helm chart's tests, in a module of their own (hack/tools/chart: Helm's
# Go packages stay out of expsync's module): helm lint, rendering of every
# documented values example, CRDs/RBAC/flags checked against the code, and
# every rendered object created server-side on envtest's kube-apiserver.
test-chart: envtest
	set -o pipefail; cd hack/tools/chart && GOWORK=off KUBEBUILDER_ASSETS="$(ENVTEST_DIR)/bin" $(GO_TEST) -count=1 -timeout 20m ./... $(GO_TEST_LOG)

# Publish the chart as an OCI artifact (helm package + helm push, with Helm's
# Go packages: no helm binary needed): REGISTRY=oci://HOST/PATH stores it as
# PATH/expsync:<chart version> and prints the digest to pin
# (examples/flux/source.yaml, docs/flux.md). Credentials come from
# `helm registry login`; PLAIN_HTTP=1 for a registry on loopback.
chart-push:
	cd hack/tools/chart && GOWORK=off go run ./cmd/push-chart --chart ../../../charts/expsync --to "$(REGISTRY)" $(if $(PLAIN_HTTP),--plain-http)

# Short fuzzing of every parser, as CI runs it; FUZZTIME=5m for a longer run.
FUZZTIME ?= 10s
fuzz:
	hack/fuzz.sh "$(FUZZTIME)"

bench:
	go test -run '^$$' -bench . -benchmem -count 1 ./...

# 1,000 trivial sweep runs end to end (`expsync run`: plan, run, hash, sign,
# commit, push) next to `xargs -P <cores>` running them bare, and the peak
# memory of `expsync run`; part of `make bench` too.
bench-e2e:
	go test -run '^$$' -bench SweepEndToEnd -benchtime 1x ./cmd/expsync

# The fleet of issue 14: `expsync controller` (the binary, on envtest) and
# `expsync serve` watching 100, 1,000 and 10,000 unchanged repositories on a
# loopback git http-backend, polled every minute: first pass, peak and steady
# memory, CPU per interval, requests, next to `git ls-remote` and (controller)
# a bare controller-runtime manager caching the same objects. An hour or more
# on 2 cores, so not part of `make bench`; EXPSYNC_BENCH_FLEET=1000 for less.
EXPSYNC_BENCH_FLEET ?= 100,1000,10000
bench-fleet: envtest
	EXPSYNC_BENCH_FLEET=$(EXPSYNC_BENCH_FLEET) KUBEBUILDER_ASSETS="$(ENVTEST_DIR)/bin" \
	  go test -run '^$$' -bench ControllerFleet -benchtime 1x -timeout 4h ./internal/controller
	EXPSYNC_BENCH_FLEET=$(EXPSYNC_BENCH_FLEET) go test -run '^$$' -bench ServeFleet -benchtime 1x -timeout 4h ./cmd/expsync

# Linters: gofmt, go vet and staticcheck (pinned in hack/tools/lint, built
# once into TOOLS_DIR; the Go build cache makes later builds instant).
TOOLS_DIR ?= $(HOME)/.cache/expsync/tools
lint: verify
	test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	go vet ./...
	cd hack/tools/lint && GOWORK=off GOFLAGS=-mod=mod go build -o "$(TOOLS_DIR)/staticcheck" honnef.co/go/tools/cmd/staticcheck
	"$(TOOLS_DIR)/staticcheck" ./...
	# Linux-only code stays behind internal/platform (and _linux.go files):
	# everything, tests included, must type-check and vet for macOS too.
	GOOS=darwin go vet ./...
	cd hack/tools/chart && GOWORK=off go vet ./... && "$(TOOLS_DIR)/staticcheck" ./...

# The ExperimentRepository CRD (config/crd/bases) and its deepcopy methods,
# generated by controller-gen (pinned in hack/tools/codegen, built once into
# TOOLS_DIR). `make verify` fails when the committed ones are stale.
generate:
	hack/codegen/generate.sh

verify:
	hack/codegen/generate.sh --verify

# controller-gen and helm, built once into TOOLS_DIR.
tools:
	hack/tools/build-codegen.sh "$(TOOLS_DIR)"
