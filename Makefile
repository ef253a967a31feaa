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

# Project-local Terraform CLI config: the machine's provider mirror when there is one,
# the public registry otherwise (scripts/terraformrc.sh).
export TF_CLI_CONFIG_FILE := $(CURDIR)/$(TFRC)
export CHECKPOINT_DISABLE := 1
export TF_IN_AUTOMATION := 1

.PHONY: help setup synth validate test lint clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(VENV)/.installed node_modules/.installed $(TFRC) ## Install the pinned toolchain (venv, cdktf CLI, Terraform config)

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(TFRC): scripts/terraformrc.sh
	scripts/terraformrc.sh >/dev/null

synth: setup ## Synthesize one stack per envs/*.toml into cdktf.out/stacks/<env>
	$(PY) main.py
	@echo "synthesized: $(ENVS)"

validate: synth ## terraform init (no backend) + validate every synthesized stack
	@for env in $(ENVS); do \
	  echo "== $$env"; \
	  terraform -chdir=cdktf.out/stacks/$$env init -backend=false -input=false >/dev/null; \
	  terraform -chdir=cdktf.out/stacks/$$env validate; \
	done

test: setup lint ## Run every check: lint, then config, snapshot, stack, terraform validate and module tests
	$(PY) -m pytest

lint: setup ## ruff, mypy --strict, terraform fmt
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy main.py stacks apikeys tests
	terraform fmt -check -recursive modules

clean: ## Remove synthesized output (keeps state files and toolchains)
	rm -rf cdktf.out
