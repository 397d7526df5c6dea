# streamwatch: two commands for a fresh machine — `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SW := $(BIN)/streamwatch
STAMP := $(VENV)/.installed

.PHONY: setup browser media-tools sdk prometheus alertmanager test lint typecheck demo down status clean bench

setup: $(STAMP) browser media-tools sdk prometheus alertmanager ## virtualenv, project install, server jars, browser, ffmpeg, web SDK, Prometheus, Alertmanager (idempotent)
	$(SW) infra fetch

# Headless Chromium from Debian for the real-browser tests of the Streamlit apps.
browser:
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian chromium for browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver >/dev/null; }

# Debian ffmpeg makes the local HLS/DASH ladder the real-player tests and the demo play.
media-tools:
	@command -v ffmpeg >/dev/null || { \
	  echo "installing Debian ffmpeg for the local player ladder"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends ffmpeg >/dev/null; }

# The web SDK and the pinned players (hls.js, dash.js) from npm; built with esbuild.
sdk: sdk/web/node_modules/.package-lock.json
	cd sdk/web && node build.mjs

sdk/web/node_modules/.package-lock.json: sdk/web/package-lock.json
	cd sdk/web && npm ci --no-audit --no-fund

# Prometheus from Debian: `streamwatch infra up` runs it with a generated scrape config.
prometheus:
	@test -x /usr/bin/prometheus || { \
	  echo "installing Debian prometheus"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null; }

# Prometheus Alertmanager from Debian, for the alerts tests and `streamwatch infra up`.
# The package's own service is not started (policy-rc.d / no init): infra/ runs it.
alertmanager:
	@test -x /usr/bin/prometheus-alertmanager || { \
	  echo "installing Debian prometheus-alertmanager"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus-alertmanager >/dev/null; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: setup ## the whole suite against real Kafka, OpenSearch and DuckDB
	cd sdk/web && npm test
	$(BIN)/pytest -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy --strict contract streamwatch infra alerts ingest streams indexers platform_stub support_console dashboards ops testkit benchmarks players tests

demo: setup ## the whole platform, locally
	$(SW) infra up
	$(SW) topics create
	$(SW) demo up
	@echo
	@echo "streamwatch is up. Stop everything with: make down"

down: ## stop everything `make demo` started
	@if test -x $(SW); then $(SW) demo down; $(SW) infra down; fi

status:
	$(SW) infra status

clean: down
	rm -rf .streamwatch
