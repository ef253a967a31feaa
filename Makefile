# The verbs people type. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ENVS := $(sort $(basename $(notdir $(wildcard envs/*.toml))))
TFRC := .tooling/terraformrc
ENV ?= dev
TARGET ?= local
ifneq ($(filter $(TARGET),local aws),$(TARGET))
$(error TARGET must be local or aws, not '$(TARGET)')
endif
# Comma-separated environments whose destroy guard is lifted for this run (e.g. ALLOW_DESTROY=prod).
ALLOW_DESTROY ?=
# Comma-separated environments whose saved plan may destroy or replace a stateful resource (make apply).
ALLOW_REPLACE ?=
STACKCTL := $(PY) -m scripts.stackctl --env $(ENV) --target $(TARGET)

# Node.js 22 or newer for everything that runs on Node (the cdktf CLI, jsii, the tests): the
# machine's when it is new enough, else a pinned Node 22 for this project (scripts/node.sh).
NODE_BIN := $(CURDIR)/.tooling/node/bin
export PATH := $(NODE_BIN):$(PATH)
export JSII_NODE := $(NODE_BIN)/node
# jsii's package cache (the extracted bindings packages and their type indexes): the project's,
# not ~/.cache. make setup leaves it warm, so the first synthesis is as fast as any (scripts/jsii_cache.py).
JSII_CACHE := .tooling/jsii-cache
export JSII_RUNTIME_PACKAGE_CACHE_ROOT := $(CURDIR)/$(JSII_CACHE)

# Project-local Terraform CLI config: the machine's provider mirror when there is one,
# the public registry otherwise (scripts/terraformrc.sh).
export TF_CLI_CONFIG_FILE := $(CURDIR)/$(TFRC)
export CHECKPOINT_DISABLE := 1
export TF_IN_AUTOMATION := 1

.PHONY: help setup synth validate test unit node-test lint module-docs contract clean local-up local-down local-prereqs bootstrap-state authz plan apply drift deploy destroy outputs demo scan bench pipeline-policies

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

NODE_CLIENT := clients/node

CHECKOV_VENV := .venv-checkov
SETUP := $(VENV)/.installed .tooling/node/.installed node_modules/.installed $(NODE_CLIENT)/node_modules/.installed $(TFRC) $(JSII_CACHE)/.warm $(CHECKOV_VENV)/.installed

# The installs are independent of each other (but for what each rule names), so they run side by side.
setup: ## Install the pinned toolchain (venv, Node 22+, cdktf CLI, the Node loader's dev tools, checkov's venv, Terraform config, warm jsii cache)
	@$(MAKE) --no-print-directory --jobs=4 $(SETUP)

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .  # the `apikeys` command (build: pyproject build-system pin)
	touch $@

.tooling/node/.installed: scripts/node.sh scripts/node-runtime/package-lock.json
	scripts/node.sh >/dev/null
	touch $@

node_modules/.installed: package.json package-lock.json .tooling/node/.installed
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(NODE_CLIENT)/node_modules/.installed: $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json .tooling/node/.installed
	npm --prefix $(NODE_CLIENT) ci --no-audit --no-fund --loglevel=error
	touch $@

$(TFRC): scripts/terraformrc.sh
	scripts/terraformrc.sh >/dev/null

$(JSII_CACHE)/.warm: $(VENV)/.installed .tooling/node/.installed scripts/jsii_cache.py
	$(PY) -m scripts.jsii_cache
	touch $@

# scripts/scan.sh keeps the stamp (requirements-checkov.txt's hash and the Python version) and
# rebuilds the venv whenever either changes.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	scripts/scan.sh --install
	touch $@

synth: setup ## Synthesize one stack per envs/*.toml into cdktf.out/stacks/<env>
	CREDLINK_ALLOW_DESTROY=$(ALLOW_DESTROY) $(PY) main.py
	@echo "synthesized: $(ENVS)"

validate: synth ## terraform init (no backend) + validate every synthesized stack
	@for env in $(ENVS); do \
	  echo "== $$env"; \
	  terraform -chdir=cdktf.out/stacks/$$env init -backend=false -input=false >/dev/null; \
	  terraform -chdir=cdktf.out/stacks/$$env validate; \
	done

# pytest-xdist workers for make test. The end-to-end tests spend much of their time waiting
# (Terraform's provider polling local AWS, rotation grace periods), so more workers than cores
# keep the cores busy; each worker starts the local AWS servers its tests need.
TEST_WORKERS ?= 4

test: setup lint node-test ## Every check: lint, unit, config, snapshots, stacks, terraform, e2e on local AWS, checkov, the Node loader
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=10

node-test: setup ## The Node loader (clients/node): tsc type check, biome lint, its tests
	npm --prefix $(NODE_CLIENT) run check

unit: $(VENV)/.installed ## The fast tests alone: loader, CLI, rotation logic (no Node, Terraform or local AWS)
	$(PY) -m pytest tests/unit

lint: setup ## ruff, mypy --strict, terraform fmt, module READMEs and contract/ up to date
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy main.py stacks apikeys scripts tests bench
	terraform fmt -check -recursive modules
	terraform fmt -check -recursive bootstrap
	$(PY) -m scripts.module_docs --check
	$(PY) -m scripts.contract --check

module-docs: setup ## Regenerate the inputs/outputs tables of modules/*/README.md from the code
	$(PY) -m scripts.module_docs

local-up: setup ## Start local AWS (moto on a free 127.0.0.1 port)
	$(PY) -m scripts.local_aws start >/dev/null

authz: synth ## The authorization matrix for ENV (deployed to a private local AWS, decided by an IAM evaluator)
	$(PY) -m scripts.authz --env $(ENV)

local-prereqs: setup ## Create in local AWS the roles and log group ENV's file expects to exist (then make deploy ENV=...)
	$(PY) -m scripts.stackctl --env $(ENV) --target local prereqs

local-down: setup ## Stop local AWS and forget its local state
	$(PY) -m scripts.local_aws stop

bootstrap-state: setup ## Create the S3 state bucket (bootstrap/state, local state) [TARGET=local|aws] [BUCKET=..] [REGION=..]; prints the [backend] block
	@$(PY) -m scripts.bootstrap_state --target $(TARGET) $(if $(BUCKET),--bucket $(BUCKET)) $(if $(REGION),--region $(REGION)) $(if $(ACCOUNT_ID),--account-id $(ACCOUNT_ID)) $(if $(AUTO_APPROVE),--auto-approve)

plan: synth ## terraform plan ENV=<env> [TARGET=local|aws] -> cdktf.out/stacks/<env>/plan.{tfplan,json}, plan-summary.md
	$(STACKCTL) plan

apply: setup ## Apply the saved plan of ENV [TARGET=...] and nothing else; [ALLOW_REPLACE=<env>] for a stateful replace
	$(STACKCTL) apply $(if $(ALLOW_REPLACE),--allow-replace $(ALLOW_REPLACE))

drift: synth ## Refresh-only plan of ENV [TARGET=...]: what changed outside Terraform (fails on drift)
	$(STACKCTL) drift

deploy: synth ## cdktf deploy ENV=<env> [TARGET=local|aws] [AUTO_APPROVE=1: no prompt, e.g. behind a CI approval gate]
	$(STACKCTL) deploy $(if $(AUTO_APPROVE),--auto-approve)

destroy: synth ## terraform destroy ENV=<env> [TARGET=...] [ALLOW_DESTROY=<env>] (guarded envs refuse)
	$(STACKCTL) destroy $(if $(AUTO_APPROVE),--auto-approve)

scan: synth ## checkov policy gate (own venv, offline): every env + modules + bootstrap, or ENV=<env>; SARIF in reports/
	scripts/scan.sh $(if $(filter command line,$(origin ENV)),$(ENV),$(ENVS) modules bootstrap)

pipeline-policies: setup ## Write the plan and apply roles' IAM policies for every env into iam/<env>/
	$(PY) -m stacks.pipeline_policies

outputs: setup ## Print the deployed stack's outputs as JSON (ENV, TARGET)
	$(STACKCTL) outputs

demo: synth ## The main job on local AWS: deploy dev, migrate demo keys, verify, call the service, stop
	$(PY) -m scripts.demo

bench: setup ## Benchmarks (~9 min): synth naive vs lean vs an empty app, first synthesis cold vs warm, key check, Secrets Manager calls and cost -> bench/out/
	$(PY) -m bench

contract: $(VENV)/.installed ## Regenerate contract/ (the loaders' shared test vectors, events, alarm patterns) from apikeys/
	$(PY) -m scripts.contract

clean: ## Remove synthesized output (keeps state files and toolchains)
	rm -rf cdktf.out
