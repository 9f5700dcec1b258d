# meshguard developer entry points. Node.js 24 comes from the `node` devDependency: every command
# runs through npx / node_modules/.bin so the machine's own (older) Node is never used.

SHELL := /bin/bash
NODE  := ./node_modules/.bin/node
NPX   := npx --no-install
PORT  ?= 8443
METRICS_PORT ?= 9090

.PHONY: all deps build typecheck run certs test tap-build unit e2e control-plane conformance cilium-oracle bench bench-quick bench-live bench-churn bench-e2e readme clean

all: build

# Installed once when missing (CI runs npm ci itself); never re-run behind someone's back, because
# npm ci deletes node_modules first.
node_modules/.package-lock.json:
	npm ci --no-audit --no-fund

deps: node_modules/.package-lock.json

build: deps
	$(NPX) tsc -p tsconfig.json

# The shipped code, and the tests, bench and scripts that Node runs with types stripped unchecked.
typecheck: deps
	$(NPX) tsc -p tsconfig.check.json

# A self-signed development CA + serving certificate for localhost/127.0.0.1 (certs/ is gitignored).
certs: certs/tls.crt

certs/tls.crt:
	./scripts/dev-certs.sh certs

# Serve the bundled example cluster on https://127.0.0.1:$(PORT) (metrics: http://127.0.0.1:$(METRICS_PORT)/metrics)
run: build certs
	$(NODE) bin/meshguard.js serve --state examples/cluster \
	  --tls-cert certs/tls.crt --tls-key certs/tls.key --port $(PORT) --metrics-port $(METRICS_PORT) --host 127.0.0.1

# Everything: typecheck, unit tests, end-to-end tests against a real kube-apiserver; the last line
# adds up both suites.
test: build typecheck unit e2e
	@$(SUMMARY) --total .tap/unit.json .tap/e2e.json

# tap must rebuild its runner once after npm ci (the TypeScript loader plugin is switched off in
# package.json: Node 24 strips the types itself).
tap-build: build
	$(NPX) tap build >/dev/null

# Test output: the raw TAP of a suite goes to .tap/<suite>.tap (and per test file to
# .tap/test-results/); the terminal gets one line per test file, then every failure with its file,
# test name and location, then a closing `N passed, N failed, N skipped` (scripts/tap-summary.ts).
# Non-zero exit on any failure, from tap or from the summary.
SUMMARY := $(NODE) scripts/tap-summary.ts

# Unit test files run in parallel. tap's default (3/4 of the CPUs, one CPU left free) runs one file at a
# time on 2 CPUs, but much of the suite's wall time is spent waiting on timers, backoffs and child
# processes: at least 3 files at a time (measured on 2 shared CPUs: 247 s instead of 346 s).
UNIT_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); j=$$(( (3 * n + 3) / 4 )); echo $$(( j < 3 ? 3 : j > 16 ? 16 : j )))

unit: tap-build
	@mkdir -p .tap
	set -o pipefail; $(NPX) tap --reporter=tap --jobs=$(UNIT_JOBS) \
	  --exclude='test/e2e/**' --exclude='**/{dist,fixture,fixtures,node_modules}/**' \
	  | tee .tap/unit.tap | $(SUMMARY) --suite unit --log .tap/unit.tap --json .tap/unit.json

control-plane:
	./scripts/prepare-control-plane.sh

# Cilium's own policy code as a test oracle (tools/cilium-oracle), cached under .cache/cilium-oracle.
# Not part of `make test`: a cold build takes about half an hour on 2 cores. Once it is cached, `make unit` runs the
# differential test too (test/conformance/differential.test.ts skips without it).
cilium-oracle:
	./scripts/prepare-cilium-oracle.sh >/dev/null

# The differential test at full size: seeded random scenarios judged by meshguard and by the oracle;
# prints the scenario count and the agreement (SEED=, COUNT= to change them).
SEED  ?= 20261206
COUNT ?= 5000
conformance: deps cilium-oracle
	$(NODE) scripts/conformance.ts --seed $(SEED) --count $(COUNT)

e2e: tap-build control-plane
	@mkdir -p .tap
	set -o pipefail; $(NPX) tap --reporter=tap --jobs=1 --timeout=900 test/e2e/*.test.ts \
	  | tee .tap/e2e.tap | $(SUMMARY) --suite e2e --log .tap/e2e.tap --json .tap/e2e.json

bench: build
	$(NODE) --expose-gc bench/run.ts --full

bench-quick: build
	$(NODE) --expose-gc bench/run.ts --quick

# kubectl apply --dry-run=server latency through the e2e control plane: no check, a CEL
# ValidatingAdmissionPolicy, meshguard as the webhook (bench/e2e-latency.ts; a few minutes).
bench-e2e: build control-plane
	$(NODE) bench/e2e-latency.ts

# The live path: meshguard serve --kubeconfig against a real kube-apiserver holding 10k and 50k pods
# (about 10 minutes, most of it loading the objects into the apiserver).
bench-live: build control-plane
	$(NODE) bench/live.ts --pods 10000,50000

# Issue 21's live path under churn: 500 pod label changes/s written into meshguard's pod watch by a proxy
# in front of the e2e apiserver, 500 req/s, at 50k pods, three pairs of phases without and with churn, and
# the state-file control, with a per-thread sampler read over each stall (bench/live-churn.ts --inject
# --threads; about 9 minutes, half of it loading the apiserver).
bench-churn: build control-plane
	$(NODE) bench/live-churn.ts --pods 50000 --inject --repeats 3 --threads --json bench/results/churn-latest.json

# Regenerate the README's rule table and the rule pages' Triggers and Codes sections from the registry.
readme: deps
	$(NODE) scripts/readme-rules.ts
	$(NODE) scripts/rule-docs.ts

clean:
	rm -rf dist .tap
