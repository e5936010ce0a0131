# changegate — developer entry points. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# kubectl from the local control plane's release (built by cluster-build)
# comes first, so tests and the demo stay inside the supported skew.
export PATH := $(or $(CHANGEGATE_CACHE),$(HOME)/.cache/changegate)/bin:$(PATH)

.PHONY: help build test test-unit test-api pydeps fuzz fuzzdeps test-browser test-e2e demo bench lint fmt generate openapi sqlx-prepare up down cluster-build cluster-up cluster-down cluster-reset

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build the changegate binary (debug)
	$(CARGO) build --bin changegate

test: test-unit test-api test-browser test-e2e ## every tier: unit, API on SQLite and PostgreSQL, the portal in Chromium, agent end-to-end on the local control plane

test-unit: ## pure unit and property tests of every crate, the agent's router tests, generated-file drift
	$(CARGO) test --workspace --lib --bins
	$(CARGO) test -p changegate --test generated_in_sync --test webhook_router --test cli --test argocd_health

test-api: pydeps ## the API and the stores on SQLite and on a private PostgreSQL the harness starts
	$(CARGO) test -p changegate-testkit -p changegate-web --tests

pydeps: target/pyenv/.installed ## the Python the calendar tests parse feeds with (icalendar from PyPI, pinned)

target/pyenv/.installed: scripts/requirements-test.txt
	python3 -m venv target/pyenv
	target/pyenv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
	touch $@

fuzz: build fuzzdeps ## the API under schemathesis (pinned, from PyPI) on SQLite and PostgreSQL, with two tenants' tokens: no server error, no ignored authentication
	scripts/fuzz.sh

fuzzdeps: target/fuzzenv/.installed ## schemathesis for make fuzz

target/fuzzenv/.installed: scripts/requirements-fuzz.txt
	python3 -m venv target/fuzzenv
	target/fuzzenv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-fuzz.txt
	touch $@

test-browser: build ## the portal in Debian's Chromium (playwright-core from npm) on SQLite and PostgreSQL; screenshots in target/browser-artifacts
	cd browser && npm ci --no-audit --no-fund --silent && npm test

test-e2e: up ## the operator's end-to-end tests against the local control plane (the serial_ ones, which stop the shared server, alone after the rest)
	$(CARGO) test --test e2e -- --test-threads=4 --skip serial_
	$(CARGO) test --test e2e serial_ -- --test-threads=1

demo: build ## the MSP story on a fresh embedded database; leaves the server running on 127.0.0.1:8080
	./demo/run.sh

bench: cluster-up ## benchmarks that print figures (see README); runs a release build of the agent
	$(CARGO) build --release --bins
	$(CARGO) bench --bench gate_decision
	$(CARGO) bench --bench server_load
	$(CARGO) bench --bench release_side
	CHANGEGATE_BIN=$(CURDIR)/target/release/changegate localcluster/operator-up.sh
	$(CARGO) bench --bench webhook_load
	$(CARGO) bench --bench resources_sync

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt

generate: ## regenerate the chart's webhook configuration and the CRDs (crds/, the chart's crds/) from the operator's code
	$(CARGO) run -q --bin changegate -- webhooks > charts/changegate/templates/webhooks.yaml
	$(CARGO) run -q --bin changegate -- crds crds
	$(CARGO) run -q --bin changegate -- crds charts/changegate/crds

openapi: ## regenerate docs/openapi.json from the API's code
	CHANGEGATE_WRITE_OPENAPI=1 $(CARGO) test -q -p changegate-web --test api openapi

sqlx-prepare: ## regenerate the stores' compile-time query data after a query or migration changed
	scripts/sqlx-prepare.sh sqlite postgres

up: cluster-up build ## control plane + a changegate server + the agent as local processes (restarted on the current build)
	localcluster/operator-up.sh

down: ## stop the agent and the local control plane
	localcluster/down.sh

cluster-build: ## build the pinned control plane from Go modules into ~/.cache/changegate (only what is missing)
	localcluster/build.sh >/dev/null

cluster-up: ## start (or reuse) etcd, kube-apiserver, controller-manager, scheduler and kwok on loopback
	localcluster/up.sh

cluster-down: ## stop the local control plane (data is kept)
	localcluster/down.sh

cluster-reset: ## stop the local control plane and wipe its data
	localcluster/reset.sh
