# Bob! Desk invoice platform — every entry point a developer or CI needs.
# Each target installs what it needs on first use (.venv, pinned by constraints.txt)
# and honours the environment of CONTRACTS section 2.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GUNICORN := $(BIN)/gunicorn -c python:bobdesk_shared.gunicorn_conf

export CONNECTIONS_PORT ?= 8001
export INVOICES_PORT ?= 8002
export WEBHOOKS_PORT ?= 8003
export YOOZ_SIM_PORT ?= 8090
export PENNYLANE_SIM_PORT ?= 8091
export EMBEDDED_MONGO_PORT ?= 27117

INSTALL_INPUTS := constraints.txt requirements-dev.txt deploy/checkov-constraints.txt $(wildcard */pyproject.toml)

.PHONY: help install lock run run-mongo run-connections run-invoices run-webhooks run-worker run-yooz-sim run-pennylane-sim test lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): $(INSTALL_INPUTS)
	@tools/install.sh

install: $(STAMP) ## create .venv and install every package (pinned)

lock: ## re-resolve constraints.txt from the pyproject files (then review the diff)
	@tools/install.sh --relock

run: $(STAMP) ## everything in the foreground, logs in .data/logs (embedded MongoDB and simulators unless MONGO_URI / <PROVIDER>_BASE_URL are set); Ctrl-C stops it
	@$(BIN)/python tools/run_stack.py

run-mongo: $(STAMP) ## embedded MongoDB-compatible server on EMBEDDED_MONGO_PORT (foreground)
	@tools/mongo.sh foreground

run-connections: $(STAMP) ## connections-service on CONNECTIONS_PORT
	@tools/mongo.sh ensure
	PORT=$(CONNECTIONS_PORT) exec $(GUNICORN) 'connections_service.app:create_app()'

run-invoices: $(STAMP) ## invoices-service on INVOICES_PORT
	@tools/mongo.sh ensure
	PORT=$(INVOICES_PORT) exec $(GUNICORN) 'invoices_service.app:create_app()'

run-webhooks: $(STAMP) ## ingest-worker webhook receiver on WEBHOOKS_PORT
	@tools/mongo.sh ensure
	PORT=$(WEBHOOKS_PORT) exec $(GUNICORN) 'ingest_worker.webhooks.app:create_app()'

run-worker: $(STAMP) ## ingest-worker poller (no port)
	@tools/mongo.sh ensure
	exec $(BIN)/python -m ingest_worker.poller

run-yooz-sim: $(STAMP) ## Yooz simulator with demo data on YOOZ_SIM_PORT
	@tools/mongo.sh ensure
	exec $(BIN)/python -m bobdesk_simulators.yooz

run-pennylane-sim: $(STAMP) ## Pennylane simulator with demo data on PENNYLANE_SIM_PORT
	exec $(BIN)/python -m bobdesk_simulators.pennylane

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

test: $(STAMP) ## lint, then every test (unit, integration on a real server, e2e over HTTP, deploy manifests)
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(STAMP) ## benchmarks against same-run baselines (see bench/README.md)
	$(BIN)/python bench/run.py

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) .data
