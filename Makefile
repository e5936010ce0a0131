# changegate — developer entry points. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# kubectl from the local control plane's release (built by cluster-build)
# comes first, so tests and the demo stay inside the supported skew.
export PATH := $(or $(CHANGEGATE_CACHE),$(HOME)/.cache/changegate)/bin:$(PATH)

.PHONY: help build test test-unit test-e2e demo bench lint fmt crds up down cluster-build cluster-up cluster-down cluster-reset

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build both binaries (debug)
	$(CARGO) build --bins

test: test-unit test-e2e ## every test tier: unit first, then end-to-end on the local control plane

test-unit: ## pure and in-process tests (no cluster)
	$(CARGO) test --lib --bins --test generated_in_sync --test webhook_router

test-e2e: up ## end-to-end tests against the local control plane and the running operator
	$(CARGO) test --test e2e -- --test-threads=4

demo: up ## the walkthrough against the local control plane
	./demo/run.sh

bench: cluster-up ## benchmarks that print figures (see README); runs a release build of the operator
	$(CARGO) build --release --bins
	CHANGEGATE_BIN=$(CURDIR)/target/release/changegate localcluster/operator-up.sh
	$(CARGO) bench --bench admission_decision
	$(CARGO) bench --bench webhook_load

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt

crds: ## regenerate crds/ and the chart's generated files from the Rust types
	$(CARGO) run -q --bin changegate -- crd > crds/changegate.dev.yaml
	cp crds/changegate.dev.yaml charts/changegate/crds/changegate.dev.yaml
	$(CARGO) run -q --bin changegate -- webhooks > charts/changegate/templates/webhooks.yaml

up: cluster-up build ## control plane + CRDs + the operator as a local process (restarted on the current build)
	localcluster/operator-up.sh

down: ## stop the operator and the local control plane
	localcluster/down.sh

cluster-build: ## build the pinned control plane from Go modules into ~/.cache/changegate (only what is missing)
	localcluster/build.sh >/dev/null

cluster-up: ## start (or reuse) etcd, kube-apiserver, controller-manager, scheduler and kwok on loopback
	localcluster/up.sh

cluster-down: ## stop the local control plane (data is kept)
	localcluster/down.sh

cluster-reset: ## stop the local control plane and wipe its data
	localcluster/reset.sh
