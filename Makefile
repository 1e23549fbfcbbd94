# Herald's build. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
# The pinned control plane (hack/tools.sh) for envtest, the e2e lab and the demo.
export KUBEBUILDER_ASSETS := $(BIN)
export GONOSUMDB := k8s.io,go.etcd.io
# One build configuration for every go command here, the image's (static, no cgo, paths trimmed): the tests, vet,
# the generators, the image and the pinned tools (hack/tools.sh, whose module pins the same versions of the
# libraries they share with Herald's) then share each compiled package in Go's build cache, and a fresh clone
# compiles Herald's dependencies once instead of twice.
export CGO_ENABLED := 0
export GOFLAGS := -trimpath
GO ?= go
CONTROLLER_GEN := $(BIN)/controller-gen
# What the binaries and the image say they are: the chart's appVersion (one place to bump) and the commit.
VERSION := $(shell awk '$$1 == "appVersion:" {gsub(/"/, "", $$2); print $$2}' charts/herald/Chart.yaml)
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
COMMIT_TIME := $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
LDFLAGS := -s -w -X github.com/heraldlb/herald/internal/version.Version=$(VERSION) -X github.com/heraldlb/herald/internal/version.Commit=$(COMMIT)
# The image `make image` builds: the name config/ and the chart's defaults use.
IMAGE_REPOSITORY ?= ghcr.io/heraldlb/herald
IMAGE_TAG ?= $(VERSION)
PLATFORMS ?= linux/amd64 linux/arm64
# make soak: the seed (default: drawn now, printed by the run) and how long faults are injected.
SEED ?= $(shell date +%s)
DURATION ?= 30m
SOAK_TIMEOUT ?= 3h
# make soak: a directory to keep a copy of the lab's logs in (none by default).
SOAK_LOGS ?=

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Main

.PHONY: demo
demo: ## Run the demo, as root: a 3-node network-namespace lab, who answers on the wire, failover. DEMO_FLAGS=--wait keeps it.
	@if [[ $$(id -u) -ne 0 ]]; then echo 'make demo builds a lab of network namespaces and needs root: sudo make demo (sudo env "PATH=$$PATH" make demo when sudo does not find go)' >&2; exit 1; fi
	$(MAKE) --no-print-directory build controlplane lab-deps
	$(BIN)/herald-demo --bin $(BIN) $(DEMO_FLAGS)

.PHONY: test
test: pins verify controlplane nodes test-image lab-deps prometheus-rules ## Run every check and test: generated code, lint, unit, alerting rules, the chart, integration on the real API server, end-to-end (real nodes included).
	$(GO) test -count=1 -timeout 15m $$($(GO) list ./... | grep -v /e2e)
	cd hack/tools/image && GOFLAGS=-mod=mod $(GO) test -count=1 . # the image assembler (its own module)
	HERALD_REALNODES=1 $(GO) test -count=1 -timeout 25m ./e2e/ # alone: its chaos scenarios time failover on a two-core machine

##@ Development

.PHONY: build
build: ## Build the herald, kubectl-herald (kubectl plugin) and herald-demo binaries into bin/.
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/herald ./cmd/herald
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/kubectl-herald ./cmd/kubectl-herald
	$(GO) build -o $(BIN)/herald-demo ./cmd/herald-demo

.PHONY: unit
unit: ## Run the tests that need no control plane.
	$(GO) test -count=1 -short ./...

.PHONY: bench
bench: build controlplane nodes test-image lab-deps ## Run the benchmarks whose figures BENCHMARKS.md quotes (about 4.5 hours; the lab ones need root).
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 20m ./internal/ipam/
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 20m ./controllers/
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./internal/election/ ./internal/announce/ ./internal/guard/ ./speaker/
	$(GO) test -run 'TestChaos|TestHealth' -count 1 -timeout 20m -v ./e2e/ # their "chaos:" and "health:" lines are figures
	$(GO) test -run '^$$' -bench Detection -benchtime 20x -count 1 -timeout 30m ./internal/membership/ # 5 and 100 members, 20 removals each, about 15 minutes
	$(GO) test -run '^$$' -bench 'Gossip|Stalls' -benchtime 1x -count 1 -timeout 30m ./internal/membership/ # 100 members simulated in slow motion, about 10 minutes
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 270m -v ./e2e/ # "nodeloss:", "rollout:", "busy:" and "lossy:" lines are figures too
	@# Real nodes: TestRealNodes (kill -9 of the announcing speaker HERALD_BENCH_TRIALS times, power-off, helm
	@# upgrade) and TestRealNodesMixed (the previous release's speakers beside today's); their figure lines last.
	HERALD_REALNODES=1 HERALD_BENCH_TRIALS=10 $(GO) test -run '^TestRealNodes' -count 1 -timeout 40m -v ./e2e/ 2>&1 | tee $(BIN)/bench-realnodes.log
	@grep -hE '(realnodes|mixed): ' $(BIN)/bench-realnodes.log | sed 's/^ *//'

.PHONY: soak
soak: controlplane lab-deps ## Run the randomized chaos soak (e2e/TestSoak), as root: SEED (default: drawn now) replays a run, DURATION (default 30m), SOAK_LOGS=dir keeps its logs; "soak:" lines are its figures. make test runs 3 minutes of seed 16.
	HERALD_SOAK_SEED=$(SEED) HERALD_SOAK_DURATION=$(DURATION) HERALD_SOAK_LOGS=$(SOAK_LOGS) $(GO) test -count=1 -run '^TestSoak$$' -timeout $(SOAK_TIMEOUT) -v ./e2e/

.PHONY: realnodes
realnodes: nodes image lab-deps ## Run e2e/TestRealNodes alone, as root: 3 real nodes (containerd, kubelet, kube-proxy), Herald installed with its chart, failover and power-off measured ("realnodes:" lines); make test runs it too.
	HERALD_REALNODES=1 $(GO) test -count=1 -run TestRealNodes -timeout 20m -v ./e2e/

.PHONY: prometheus-rules
prometheus-rules: ## Check and unit-test the alerts of config/prometheus with the pinned promtool (built into bin/ the first time).
	hack/tools.sh promtool
	PROMTOOL=$(BIN)/promtool $(GO) test -count=1 ./config/prometheus/

.PHONY: fuzz
fuzz: ## Run each fuzz target for a short while.
	$(GO) test -run '^$$' -fuzz '^FuzzParseRange$$' -fuzztime 30s ./internal/ipam/
	$(GO) test -run '^$$' -fuzz '^FuzzParseARP$$' -fuzztime 30s ./internal/announce/
	$(GO) test -run '^$$' -fuzz '^FuzzParseNS$$' -fuzztime 30s ./internal/announce/
	$(GO) test -run '^$$' -fuzz '^FuzzARPRoundTrip$$' -fuzztime 30s ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzNDRoundTrip$$' -fuzztime 30s ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMeta$$' -fuzztime 30s ./internal/membership/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBook$$' -fuzztime 30s ./internal/membership/
	$(GO) test -run '^$$' -fuzz '^FuzzTableMatchesWinner$$' -fuzztime 30s ./internal/election/
	$(GO) test -run '^$$' -fuzz '^FuzzParseARP$$' -fuzztime 30s ./internal/guard/
	$(GO) test -run '^$$' -fuzz '^FuzzParseNDP$$' -fuzztime 30s ./internal/guard/

.PHONY: generate
generate: tools ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: tools ## Generate CRDs and RBAC under config/, and copy them with the alerts and dashboard into charts/herald/files/.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=herald-controller paths=./controllers/... output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=herald-speaker paths=./speaker/... output:rbac:artifacts:config=config/speaker/rbac
	@# The chart takes the CRDs, roles, alerts and dashboard of config/ as they are (charts/herald/files/).
	rm -f charts/herald/files/crds/*.yaml
	cp config/crd/bases/*.yaml charts/herald/files/crds/
	cp config/rbac/role.yaml charts/herald/files/rbac/controller.yaml
	cp config/speaker/rbac/role.yaml charts/herald/files/rbac/speaker.yaml
	cp config/prometheus/rules.yaml charts/herald/files/prometheus/rules.yaml
	cp config/grafana/herald.json charts/herald/files/grafana/herald.json

.PHONY: lint
lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n $$out ]]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: verify
verify: lint tools controlplane ## Fail when generated code, CRDs, RBAC or go.mod drift from the sources.
	hack/verify.sh

##@ Packaging

.PHONY: chart
chart: ## Check charts/herald with the pinned helm: lint, schema, defaults = config/default, dry runs on a real API server.
	hack/tools.sh helm controlplane
	$(GO) test -count=1 ./charts/

.PHONY: image
image: ## Build ghcr.io/heraldlb/herald:<appVersion> for linux/amd64 and arm64 without a container engine: bin/image/oci (OCI layout), bin/herald-image-OS-ARCH.tar.
	hack/tools.sh herald-image
	for p in $(PLATFORMS); do \
		echo "image: building herald for $$p" >&2; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/image/$${p/\//-}/herald ./cmd/herald; \
	done
	$(BIN)/herald-image -repository $(IMAGE_REPOSITORY) -tag $(IMAGE_TAG) -version $(VERSION) -revision $(COMMIT) \
		-created $(COMMIT_TIME) $(foreach p,$(PLATFORMS),-binary $(p)=$(BIN)/image/$(subst /,-,$(p))/herald) \
		-layout $(BIN)/image/oci -tarballs $(BIN)

##@ Tools

.PHONY: pins
pins: ## Build every pinned tool make test runs into bin/, in one go build (about 20 minutes on 2 cores the first time).
	hack/tools.sh all

.PHONY: tools
tools: ## Build the pinned generators, promtool and helm into bin/.
	hack/tools.sh controller-gen promtool helm

.PHONY: lab-deps
lab-deps: ## Install the lab's system tools (arping, ndisc6, nftables, tcpdump, iproute2, containerd, runc, CNI plugins) when missing; needs root.
	hack/lab-deps.sh

.PHONY: controlplane
controlplane: ## Build the pinned etcd, kube-apiserver and kubectl into bin/ (minutes the first time).
	hack/tools.sh controlplane

.PHONY: nodes
.PHONY: test-image
test-image: # the image TestRealNodes runs: linux/amd64 alone (a fresh clone then skips the arm64 build, minutes)
	$(MAKE) --no-print-directory image PLATFORMS=linux/amd64

nodes: ## Build the real-node lab's pinned kube-controller-manager, kube-scheduler, kubelet, kube-proxy and the image assembler into bin/.
	hack/tools.sh nodes herald-image

.PHONY: clean
clean: ## Remove built binaries (keeps the cached control plane).
	rm -f $(BIN)/herald $(BIN)/kubectl-herald $(BIN)/herald-demo
