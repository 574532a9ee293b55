# expsync — developer entry points. `make test` is the README's test command
# and what .ci/run calls.
SHELL := /bin/bash
export GOTOOLCHAIN := local

# Where the envtest binaries (kube-apiserver, etcd) built from the Go module
# proxy are cached; hack/envtest/build.sh fills it once.
ENVTEST_DIR ?= $(HOME)/.cache/expsync/envtest

.PHONY: build test bench bench-e2e lint fuzz envtest gitea quickstart

# Static and cgo-free, as released: it runs from a distroless/static image
# (controller, `expsync exec` in pods); user lookups and DNS use Go's own
# implementations. It also starts leaner (no libc mapped: ~1 MiB less RSS).
build:
	CGO_ENABLED=0 go build -o bin/expsync ./cmd/expsync

envtest:
	hack/envtest/build.sh "$(ENVTEST_DIR)"

# Gitea v1.27.3 built from the Go module proxy (cgo, ~14 minutes once),
# cached in GITEA_DIR: the real forge of the pull-request tier. `make test`
# does not build it: without it those tests skip saying so, except under
# CI=true, where .ci/run builds it and they must run.
GITEA_DIR ?= $(HOME)/.cache/expsync/gitea
gitea:
	hack/forge/build-gitea.sh "$(GITEA_DIR)"

# The README's main command: the whole loop on a scratch Git remote made from
# examples/experiments (run, attest, commit back, verify).
quickstart:
	hack/quickstart.sh

test: envtest
	KUBEBUILDER_ASSETS="$(ENVTEST_DIR)/bin" go test -count=1 -timeout 20m ./...

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

# Linters: gofmt, go vet and staticcheck (pinned in hack/tools/lint, built
# once into TOOLS_DIR; the Go build cache makes later builds instant).
TOOLS_DIR ?= $(HOME)/.cache/expsync/tools
lint:
	test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	go vet ./...
	cd hack/tools/lint && GOWORK=off GOFLAGS=-mod=mod go build -o "$(TOOLS_DIR)/staticcheck" honnef.co/go/tools/cmd/staticcheck
	"$(TOOLS_DIR)/staticcheck" ./...
