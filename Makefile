# Herald's build. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
# The pinned control plane (hack/tools.sh) for envtest, the e2e lab and the demo.
export KUBEBUILDER_ASSETS := $(BIN)
export GONOSUMDB := k8s.io,go.etcd.io
GO ?= go
CONTROLLER_GEN := $(BIN)/controller-gen

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
test: verify controlplane lab-deps prometheus-rules ## Run every check and test: generated code, lint, unit, alerting rules, integration on the real API server, end-to-end.
	$(GO) test -count=1 -timeout 15m $$($(GO) list ./... | grep -v /e2e)
	$(GO) test -count=1 -timeout 25m ./e2e/ # alone: its chaos scenarios time failover on a two-core machine

##@ Development

.PHONY: build
build: ## Build the herald, kubectl-herald (kubectl plugin) and herald-demo binaries into bin/.
	$(GO) build -o $(BIN)/herald ./cmd/herald
	$(GO) build -o $(BIN)/kubectl-herald ./cmd/kubectl-herald
	$(GO) build -o $(BIN)/herald-demo ./cmd/herald-demo

.PHONY: unit
unit: ## Run the tests that need no control plane.
	$(GO) test -count=1 -short ./...

.PHONY: bench
bench: build controlplane lab-deps ## Run the benchmarks whose figures BENCHMARKS.md quotes (about 2 hours; the lab ones need root).
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 20m ./internal/ipam/
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 20m ./controllers/
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./internal/election/ ./internal/announce/ ./internal/guard/ ./speaker/
	$(GO) test -run 'TestChaos|TestHealth' -count 1 -timeout 20m -v ./e2e/ # their "chaos:" and "health:" lines are figures
	$(GO) test -run '^$$' -bench Detection -benchtime 10x -count 1 ./internal/membership/
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 150m -v ./e2e/ # "nodeloss:" and "rollout:" lines are figures too

.PHONY: prometheus-rules
prometheus-rules: ## Check and unit-test the alerts of config/prometheus with the pinned promtool (built into bin/ the first time).
	hack/tools.sh promtool
	PROMTOOL=$(BIN)/promtool $(GO) test -count=1 ./config/prometheus/

.PHONY: fuzz
fuzz: ## Run each fuzz target for a short while.
	$(GO) test -run '^$$' -fuzz '^FuzzParseRange$$' -fuzztime 30s ./internal/ipam/
	$(GO) test -run '^$$' -fuzz '^FuzzParseARP$$' -fuzztime 30s ./internal/announce/
	$(GO) test -run '^$$' -fuzz '^FuzzParseNS$$' -fuzztime 30s ./internal/announce/
	$(GO) test -run '^$$' -fuzz '^FuzzARPRoundTrip$$' -fuzztime 30s ./internal/probe/
	$(GO) test -run '^$$' -fuzz '^FuzzNDPRoundTrip$$' -fuzztime 30s ./internal/probe/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMeta$$' -fuzztime 30s ./internal/membership/
	$(GO) test -run '^$$' -fuzz '^FuzzTableMatchesWinner$$' -fuzztime 30s ./internal/election/
	$(GO) test -run '^$$' -fuzz '^FuzzParseARP$$' -fuzztime 30s ./internal/guard/
	$(GO) test -run '^$$' -fuzz '^FuzzParseNDP$$' -fuzztime 30s ./internal/guard/

.PHONY: generate
generate: tools ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: tools ## Generate CRDs and RBAC under config/.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=herald-controller paths=./controllers/... output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=herald-speaker paths=./speaker/... output:rbac:artifacts:config=config/speaker/rbac

.PHONY: lint
lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n $$out ]]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: verify
verify: lint tools controlplane ## Fail when generated code, CRDs, RBAC or go.mod drift from the sources.
	hack/verify.sh

##@ Tools

.PHONY: tools
tools: ## Build the pinned generators and promtool into bin/.
	hack/tools.sh controller-gen promtool

.PHONY: lab-deps
lab-deps: ## Install the lab's system tools (arping, ndisc6, nftables, tcpdump, iproute2) when missing; needs root.
	hack/lab-deps.sh

.PHONY: controlplane
controlplane: ## Build the pinned etcd, kube-apiserver and kubectl into bin/ (minutes the first time).
	hack/tools.sh controlplane

.PHONY: clean
clean: ## Remove built binaries (keeps the cached control plane).
	rm -f $(BIN)/herald $(BIN)/kubectl-herald $(BIN)/herald-demo
