# wirestream: the two commands are `make run` and `make test`; everything else they need is here.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LAKE ?= ./lake
TOPIC ?= articles
export WIRESTREAM_CACHE ?= $(HOME)/.cache/wirestream
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup venv dev prism s3-server flink kafka-jars chromium kafka-up kafka-down kafka-status s3-up s3-down s3-status iceberg-rest iceberg-rest-up iceberg-rest-down iceberg-rest-status run test lint unit component beam integration bench soak clean

# uv (from PyPI, pinned) installs the locked packages: 2 s from its cache (~/.cache/uv) where pip
# took 59 s, the same packages at the same versions. It trusts the system's certificates, as pip
# does here (PIP_CERT).
UV := $(BIN)/uv
UV_INSTALL = $(UV) pip install -q --python $(BIN)/python
export UV_NATIVE_TLS := 1
# uv does not byte-compile what it installs: Python does, on first import, for the 4,000 modules of
# the 18,000 in the venv that a run imports. Where PYTHONDONTWRITEBYTECODE is set (this machine sets
# it) Python would compile them again in every process instead (17 CPU-s more a pipeline run), so the
# targets here let it write. Compiling the whole venv up front took 105 CPU-s on a new clone.
unexport PYTHONDONTWRITEBYTECODE

setup: venv prism kafka-jars s3-server iceberg-rest ## everything: Python env, Prism runner, Kafka jars, the local S3 server, the Iceberg REST catalog's jars

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml requirements.lock requirements-gcp.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==26.0.1 setuptools wheel uv==0.13.9
	$(UV_INSTALL) -r requirements.lock -r requirements-gcp.lock
	$(UV_INSTALL) --no-deps -e .
	touch $@

dev: $(VENV)/.dev-installed ## the [dev] and [recipes] extras: test, lint and benchmark tools, polars for its recipe
$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.lock requirements-recipes.lock
	$(UV_INSTALL) -r requirements-dev.lock -r requirements-recipes.lock -c requirements.lock
	touch $@

prism: ## build Beam's Prism runner from the Go module proxy (cached in ~/.cache/wirestream)
	infra/prism/build.sh

s3-server: ## build SeaweedFS (a local S3-compatible server for the object-store tests) from the Go module proxy (cached)
	infra/s3/build.sh

flink: ## Beam's Flink job-server jar for the pinned Beam version, from Maven Central (cached in ~/.cache/wirestream)
	infra/flink/flink.sh fetch

kafka-jars:
	infra/kafka/kafka.sh fetch

iceberg-rest: ## the Iceberg REST catalog test server's jars (for --iceberg-catalog-uri tests), from Maven Central (cached in ~/.cache/wirestream)
	infra/iceberg-rest/rest.sh fetch

chromium: ## headless Chromium for the Data Docs browser test (Debian's package; skipped if present)
	infra/chromium.sh

kafka-up: ## start the local broker on 127.0.0.1:19092 (idempotent)
	infra/kafka/kafka.sh up

kafka-down:
	infra/kafka/kafka.sh down

kafka-status:
	infra/kafka/kafka.sh status

s3-up: ## start the local S3 server on 127.0.0.1:18333 (idempotent; `infra/s3/s3.sh env` prints its client settings)
	infra/s3/s3.sh up

s3-down:
	infra/s3/s3.sh down

s3-status:
	infra/s3/s3.sh status

iceberg-rest-up: ## start the local Iceberg REST catalog on 127.0.0.1:18181 (idempotent; S3 settings from AWS_*, see infra/iceberg-rest/rest.sh)
	infra/iceberg-rest/rest.sh up

iceberg-rest-down:
	infra/iceberg-rest/rest.sh down

iceberg-rest-status:
	infra/iceberg-rest/rest.sh status

run: setup ## broker up, demo articles in, pipeline until caught up, summary out
	LAKE="$(LAKE)" TOPIC="$(TOPIC)" VENV="$(VENV)" infra/run-demo.sh

lint: dev
	$(BIN)/ruff check pipelines transforms schemas tests benchmarks examples
	$(BIN)/ruff format --check pipelines transforms schemas tests benchmarks examples
	$(BIN)/mypy --cache-dir "$(WIRESTREAM_CACHE)/mypy"  # outside the clone: a fresh clone rechecks only what changed
	$(BIN)/lint-imports  # the layering contracts in .importlinter

unit: dev
	$(BIN)/pytest -q tests/unit

component: dev
	$(BIN)/pytest -q tests/component

beam: dev prism
	$(BIN)/pytest -q tests/beam

integration: setup dev chromium
	$(BIN)/pytest -q tests/integration

# pytest-xdist workers, one per core. Each worker starts a broker, S3 server and Iceberg catalog of
# its own when a test needs one (ports moved by 100 per worker); an integration module sharing a
# fixture goes to one worker whole, and the integration tests are sent first (tests/conftest.py).
TEST_WORKERS ?= auto

test: setup dev chromium lint ## lint, then every test on one worker per core (integration tests: real broker, S3 server, Prism)
	$(BIN)/pytest -q --durations=20 -n $(TEST_WORKERS) --no-loadscope-reorder tests

bench: setup dev ## cleaning quality and speed, dedup vs datasketch, NER throughput (bare spaCy vs stage vs pipeline), validation cost, lake on disk vs S3
	$(BIN)/python -m benchmarks.validators
	$(BIN)/python -m benchmarks.cleaning
	$(BIN)/python -m benchmarks.content_rules
	$(BIN)/python -m benchmarks.dedup
	$(BIN)/python -m benchmarks.entities
	$(BIN)/python -m benchmarks.entity_quality
	$(BIN)/python -m benchmarks.quality
	$(BIN)/python -m benchmarks.lake_stores

soak: setup ## stream for 20 min at 2 records/s with kill -9s and a broker restart: lost, doubled, latency, memory (SOAK_ARGS=...)
	infra/kafka/kafka.sh up
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build lake .pytest_cache .mypy_cache .ruff_cache
