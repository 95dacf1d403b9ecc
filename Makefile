# sluice — see README.md. `make demo` and `make test` do all set-up themselves.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

ROOT    := $(abspath .)
BIN     := $(ROOT)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
GOTEST  ?= $(GO) test
# Binaries and the non-race tests share one build configuration with the kube
# tools (hack/kube-version.sh): static, trimmed paths.
STATIC  := CGO_ENABLED=0
GOBUILD := $(STATIC) $(GO) build -trimpath
GOTEST_STATIC := $(STATIC) $(GOTEST) -trimpath
# Integration and e2e tests start control-plane binaries from bin/.
export KUBEBUILDER_ASSETS := $(BIN)

.PHONY: all
all: build

## tools: build the pinned control plane, kubelet, containerd, CNI plugins, kwok, kubectl and helm into bin/
## (first run ~20 min, then cached), after the host packages they need
.PHONY: tools
tools: host-packages
	@bash hack/tools.sh

## host-packages: Debian's runc (the real node's runtime), iptables (its route to the API server), mmdebstrap and busybox-static (its images), when missing
HOST_PACKAGES := runc iptables mmdebstrap busybox-static
.PHONY: host-packages
host-packages:
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f '$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "host-packages: installing" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

## build: build sluice's binaries into bin/
.PHONY: build
build:
	$(GOBUILD) -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/sluice-webhook ./cmd/webhook
	$(GOBUILD) -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/kubectl-sluice ./cmd/kubectl-sluice
	$(GOBUILD) -ldflags "-s -w" -o $(BIN)/kfp-launcher ./cmd/kfp-launcher
	install -m 0755 hack/krew/kubectl_complete-sluice $(BIN)/kubectl_complete-sluice
	$(GOBUILD) -o $(BIN)/sluice-provisioner ./hack/provisioner
	$(GOBUILD) -o $(BIN)/sluice-gpu-plugin ./hack/gpu-plugin
	$(GOBUILD) -o $(BIN)/mkimage ./hack/mkimage
	@bash hack/build-scheduler.sh

## scheduler: build bin/sluice-scheduler, version-stamped like the control plane (FORCE=1 rebuilds)
.PHONY: scheduler
scheduler:
	@bash hack/build-scheduler.sh

## images: build the local node's images (localhost/sluice/pause:3.10, busybox:dev, python:dev)
## and sluice's own (webhook:dev, scheduler:dev, kfp-launcher:dev) into bin/images/, without a container engine
.PHONY: images
images: tools build
	@bash hack/images.sh pause busybox python webhook scheduler kfp-launcher

## docker-images: build the webhook and scheduler images with hack/Dockerfile (needs docker or podman;
## BASE_IMAGE: a distroless static nonroot image from your registry)
IMAGE_REPO     ?= sluice
IMAGE_TAG      ?= $(VERSION)
CONTAINER_TOOL ?= docker
.PHONY: docker-images
docker-images:
	@test -n "$(BASE_IMAGE)" || { echo "docker-images: set BASE_IMAGE to a distroless static nonroot image your clusters can pull"; exit 2; }
	for t in webhook scheduler; do \
		$(CONTAINER_TOOL) build -f hack/Dockerfile --target $$t --build-arg BASE_IMAGE=$(BASE_IMAGE) \
			--build-arg VERSION=$(VERSION) -t $(IMAGE_REPO)/$$t:$(IMAGE_TAG) . || exit 1; \
	done

## dev-up: start (or repair) the local cluster with kwok nodes, storage and sluice
.PHONY: dev-up
dev-up: tools build
	@bash hack/dev-up.sh

## dev-down: remove the local cluster and everything dev-up started
.PHONY: dev-down
dev-down:
	@bash hack/dev-down.sh

## demo: start the local cluster and run the example ML pipeline to its end
.PHONY: demo
demo: dev-up
	@bash hack/demo.sh

## test: every test CI runs: verify, unit, chart, integration (envtest) and e2e (local cluster)
.PHONY: test
test: verify test-unit test-chart test-integration test-e2e

## test-unit: unit tests with fakes; the race detector on sluice's own concurrent code
## (the scheduler's packages run without it: a race build of kube-scheduler costs ~15 min cold)
SCHED_PKGS := ./scheduler-plugin/... ./cmd/scheduler/...
.PHONY: test-unit
test-unit:
	$(GOTEST) -race $$($(GO) list ./... | grep -v -e /e2e/ -e /manifests -e /scheduler-plugin -e /cmd/scheduler)
	$(GOTEST_STATIC) $(SCHED_PKGS)

## test-chart: helm lint, the values schema and a matrix of rendered charts, checked in Go (needs bin/helm)
.PHONY: test-chart
test-chart: tools
	$(GOTEST_STATIC) -count=1 ./manifests/...

## test-integration: webhook and controller against a real kube-apiserver (envtest)
.PHONY: test-integration
test-integration: tools
	$(GOTEST_STATIC) -count=1 -timeout 10m ./e2e/integration/...

## test-e2e: full local cluster (real node and kwok nodes, kube-controller-manager, the chart installed, our manager and scheduler); as root.
## Test artifacts (the dashboard's screenshot) go to bin/test-artifacts/
.PHONY: test-e2e
test-e2e: tools build images browser
	mkdir -p $(BIN)/test-artifacts && $(GOTEST_STATIC) -count=1 -timeout 30m -artifacts -outputdir $(BIN)/test-artifacts ./e2e/cluster/...
	$(GOTEST_STATIC) -count=1 -timeout 15m ./e2e/install/...

## browser: Debian's chromium for the dashboard's browser test, when missing; the test skips, saying so, if it cannot be installed
.PHONY: browser
browser:
	@command -v chromium >/dev/null || { echo "browser: installing chromium"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
		echo "browser: chromium could not be installed: the dashboard's browser test will be skipped"; }

## test-soak: the manager SIGKILLed many times over many runs, for several seeds (not part of make test; ~10 min)
SOAK_SEEDS ?= 1 2 3
.PHONY: test-soak
test-soak: tools build images
	for seed in $(SOAK_SEEDS); do \
		SLUICE_FAULT_SEED=$$seed SLUICE_FAULT_RUNS=40 SLUICE_FAULT_KILLS=15 \
			$(GOTEST_STATIC) -count=1 -timeout 30m -run '^TestManagerKilledAtRandom$$' ./e2e/cluster/... || exit 1; \
	done

## bench: speed and scale benchmarks on the local cluster (started if needed), not part of make test:
## prints a markdown table and writes bench/out/results.json (BENCH_SCALE=large: fan1000 is 1 -> 10,000 -> 1)
.PHONY: bench
bench: dev-up
	$(GO) run ./bench/suite

## bench-peers: the peers on chain50 and fan1000: Argo Workflows' workflow-controller (the version bench/peers/go.mod pins,
## built into bin/ when missing or older than that file, ~10 min cold) as argo-default and argo-best; merged into bench/out/results.json
ARGO_CONTROLLER := $(BIN)/argo-workflow-controller
.PHONY: bench-peers
bench-peers: $(ARGO_CONTROLLER) dev-up
	$(GO) run ./bench/suite -only chain50,fan1000 -contenders argo-default,argo-best -merge

$(ARGO_CONTROLLER): bench/peers/go.mod bench/peers/go.sum
	cd bench/peers && v=$$($(GO) list -m -f '{{.Version}}' github.com/argoproj/argo-workflows/v4) && \
		$(GOBUILD) -ldflags "-s -w -X github.com/argoproj/argo-workflows/v4.version=$$v" -o $@ github.com/argoproj/argo-workflows/v4/cmd/workflow-controller

## krew: kubectl-sluice archives for krew's platforms and the plugin manifest naming them, into bin/dist/
## (KREW_BASE: where the release's archives will be downloaded from; VERSION: its v-prefixed version)
.PHONY: krew
krew:
	@test -n "$(KREW_BASE)" || { echo "krew: set KREW_BASE to where the archives will be downloaded from"; exit 1; }
	$(GO) run ./hack/krew -version $(VERSION) -base "$(KREW_BASE)" -out $(BIN)/dist

## verify: formatting, vet, and a tidy go.mod
.PHONY: verify
verify:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@cd hack/nodetools && $(GO) mod tidy -diff >/dev/null || { echo "hack/nodetools/go.mod is not tidy: run go mod tidy there"; exit 1; }

## fuzz: run each fuzz target (the parsers', the admission endpoints', lint's, the KFP importer's) for FUZZTIME (default 30s)
FUZZTIME ?= 30s
.PHONY: fuzz
fuzz:
	for f in FuzzParse FuzzGraph FuzzParseResults FuzzCompileWhen; do \
		$(GOTEST) -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./annotations/ || exit 1; \
	done
	for f in FuzzAdmissionReview FuzzMutateVolumes; do \
		$(GOTEST) -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./webhook/ || exit 1; \
	done
	$(GOTEST) -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./lint/
	for f in FuzzDecode FuzzDNSName FuzzConvert; do \
		$(GOTEST) -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./kfp/ || exit 1; \
	done
	for f in FuzzParseParam FuzzExpand; do \
		$(GOTEST) -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./kfp/task/ || exit 1; \
	done

.PHONY: help
help:
	@grep -E '^## ' Makefile | sed 's/^## //'
