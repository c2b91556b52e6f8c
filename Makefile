# The single entry point: `make demo`, `make test`, `make lint`, `make clean` (see README).
# Every target works from a fresh clone: `make demo`, `make test` and `make bench` first check
# the system packages they need (scripts/prerequisites: installed when run as root, else named
# with the command that installs them).

# The first Python 3.11/3.12 with venv on PATH (pyproject.toml's range), else python3.
PYTHON ?= $(or $(shell scripts/prerequisites --which-python 2>/dev/null),python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv kafka-jars lint test test-fast demo nemesis kafka-start kafka-stop clean
.PHONY: prerequisites-demo prerequisites-test prerequisites-bench

include manifests/deploy.mk
include tests/flink/flink.mk
include bench/bench.mk

venv: $(STAMP)

# Listed first by the goals that use them, so they run before anything else.
prerequisites-demo prerequisites-test prerequisites-bench:
	@scripts/prerequisites $(@:prerequisites-%=%)

# Reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

kafka-jars:
	$(PYTHON) scripts/localkafka.py jars

lint: $(STAMP) lint-docker
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy

test: prerequisites-test lint kafka-jars kustomize
	$(PY) -m pytest

test-fast: $(STAMP) kustomize
	$(PY) -m pytest -m "not broker"

demo: prerequisites-demo $(STAMP) kafka-jars
	scripts/demo

# Random faults for NEMESIS_SECONDS (600) with NEMESIS_SEED (random, printed), then an exact
# check of every alert; the report goes to .run/nemesis-SEED.json (docs/semantics.md).
nemesis: prerequisites-test $(STAMP) kafka-jars
	$(PY) -m tests.integration.nemesis

kafka-start: $(STAMP) kafka-jars
	scripts/kafka start
	scripts/kafka create-topics

kafka-stop:
	scripts/kafka stop

clean:
	-scripts/kafka stop
	rm -rf $(VENV) .cache .run build .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
