# `make bench` (bench/README.md): a local broker, 1,000,000 transactions over cold pairs and
# 200,000 over hot ones, our worker against the bare consumers, Faust's floors, PyFlink, Quix
# Streams and Bytewax, alert latency and a py-spy profile; the figures go to bench/results/.
# Included by the Makefile after tests/flink/flink.mk (it reuses `flink-env` and its connector
# jar):
#
#   .venv                     + bench/requirements.txt (confluent-kafka, psutil, matplotlib, py-spy)
#   .venv-quix/               quixstreams (bench/peers/requirements-quix.txt), its own venv
#   .venv-bytewax/            bytewax[kafka] (bench/peers/requirements-bytewax.txt), its own venv
#
# Knobs (environment): BENCH_COUNT (1000000), BENCH_HOT_COUNT (200000), BENCH_CAP_SECONDS (60),
# BENCH_LATENCY_SECONDS (30 per rate), BENCH_RATES (100,1000,5000),
# BENCH_PROFILE_SECONDS (30), BENCH_PHASES, BENCH_NAME, BENCH_WORKER_PATH (bench/README.md).

BENCH_STAMP := $(VENV)/.bench-installed
QUIX_VENV := .venv-quix
QUIX_STAMP := $(QUIX_VENV)/.installed
BYTEWAX_VENV := .venv-bytewax
BYTEWAX_STAMP := $(BYTEWAX_VENV)/.installed

.PHONY: bench bench-env clean-bench

bench-env: $(BENCH_STAMP) $(QUIX_STAMP) $(BYTEWAX_STAMP) flink-env kafka-jars

$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

$(QUIX_STAMP): bench/peers/requirements-quix.txt
	test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r bench/peers/requirements-quix.txt
	touch $@

$(BYTEWAX_STAMP): bench/peers/requirements-bytewax.txt
	test -x $(BYTEWAX_VENV)/bin/python || $(PYTHON) -m venv $(BYTEWAX_VENV)
	$(BYTEWAX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r bench/peers/requirements-bytewax.txt
	touch $@

bench: prerequisites-bench bench-env
	FLINK_KAFKA_JAR=$(FLINK_CONNECTOR_JAR) $(PY) -m bench

clean: clean-bench

clean-bench:
	rm -rf $(QUIX_VENV) $(BYTEWAX_VENV) .run/bench
