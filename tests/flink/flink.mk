# The PyFlink oracle of tests/flink (docs/flink-parity.md): its own venv and jars.
# Included by the Makefile; adds `make flink-env` and `make parity`, and makes `make test`
# build the Flink environment first (the parity tests run with all the others).
#
#   .venv-flink/                  apache-flink (tests/flink/requirements.txt), Python 3.11/3.12
#   .cache/flink/*.jar            the Flink Kafka SQL connector (Maven, with mvn) and the
#                                 per-event watermark strategy (tests/flink/java, with javac)
# Each step is stamped by its output file and redone only when its inputs change.

# Including this file must not change which target a bare `make` runs.
FLINK_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

FLINK_KAFKA_CONNECTOR := 5.0.0-2.2
FLINK_VENV := .venv-flink
FLINK_CACHE := .cache/flink
FLINK_REQUIREMENTS := tests/flink/requirements.txt
FLINK_VENV_STAMP := $(FLINK_VENV)/.installed
FLINK_CONNECTOR_JAR := $(FLINK_CACHE)/flink-sql-connector-kafka.jar
FLINK_WATERMARKS_SRC := tests/flink/java/fraudparity/EveryEventWatermarks.java
FLINK_WATERMARKS_JAR := $(FLINK_CACHE)/parity-watermarks.jar
# apache-flink 2.2 ships wheels for CPython 3.9-3.12; the first of these that exists.
FLINK_PYTHON ?= $(firstword $(foreach p,python3.11 python3.12,$(shell command -v $(p))))

.PHONY: flink-env parity clean-flink

flink-env: $(FLINK_VENV_STAMP) $(FLINK_CONNECTOR_JAR) $(FLINK_WATERMARKS_JAR)

$(FLINK_VENV_STAMP): $(FLINK_REQUIREMENTS)
	@test -n "$(FLINK_PYTHON)" || { echo "flink-env: needs python3.11 or python3.12 on PATH (apache-flink has no wheels for newer)"; exit 1; }
	test -x $(FLINK_VENV)/bin/python || $(FLINK_PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $(FLINK_REQUIREMENTS)
	touch $@

# Copied under a version-free name, so the tests need not know the version.
$(FLINK_CONNECTOR_JAR): tests/flink/flink.mk
	@command -v mvn >/dev/null || { echo "flink-env: mvn not found (Debian package 'maven')"; exit 1; }
	rm -rf $(FLINK_CACHE)/download && mkdir -p $(FLINK_CACHE)/download
	mvn -q -B -Dstyle.color=never dependency:copy \
		-Dartifact=org.apache.flink:flink-sql-connector-kafka:$(FLINK_KAFKA_CONNECTOR) \
		-DoutputDirectory=$(FLINK_CACHE)/download
	mv $(FLINK_CACHE)/download/flink-sql-connector-kafka-$(FLINK_KAFKA_CONNECTOR).jar $@
	rm -rf $(FLINK_CACHE)/download

# Compiled against the flink-dist jar that apache-flink ships (Java 11 bytecode; Flink 2.2
# runs on Java 11, 17 or 21).
$(FLINK_WATERMARKS_JAR): $(FLINK_WATERMARKS_SRC) $(FLINK_VENV_STAMP)
	@command -v javac >/dev/null || { echo "flink-env: javac not found (Debian package 'openjdk-17-jdk-headless')"; exit 1; }
	rm -rf $(FLINK_CACHE)/classes && mkdir -p $(FLINK_CACHE)/classes
	javac --release 11 -nowarn -d $(FLINK_CACHE)/classes \
		-cp "$$(ls $(FLINK_VENV)/lib/python3*/site-packages/pyflink/lib/flink-dist-*.jar)" \
		$(FLINK_WATERMARKS_SRC)
	jar cf $@.tmp -C $(FLINK_CACHE)/classes . && mv $@.tmp $@
	rm -rf $(FLINK_CACHE)/classes

# The parity suite alone (it is part of `make test` too).
parity: venv kafka-jars flink-env
	$(PY) -m pytest -m parity

test: flink-env

clean: clean-flink

clean-flink:
	rm -rf $(FLINK_VENV) $(FLINK_CACHE)

.DEFAULT_GOAL := $(FLINK_SAVED_DEFAULT_GOAL)
