# The two commands a new engineer needs:
#   make demo   set up, generate a demo landing zone, build the warehouse
#   make test   set up, lint, type-check and run every test (incl. a dbt build)
# and a third on Apache Spark: make demo-spark (the demo, then its landing zone built on Spark)
# and, while working: make test-fast  (the tests that run no dbt, in under a minute)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# No telemetry, ever; profiles.yml lives in the repository.
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DBT_PROFILES_DIR := $(CURDIR)
export DBT_PROJECT_DIR := $(CURDIR)

DEMO_CUSTOMERS ?= 2000
DEMO_SEED ?= 42

.PHONY: help venv demo test test-fast lint typecheck sqllint pytest build generate clean lock chromium pack venv-spark spark-jar test-spark test-spark-incremental lock-spark jdk test-bench demo-spark

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# --no-compile, then compileall: pip would byte-compile every file it installs one at a time
# (about 40% of the install's CPU: 61 -> 37 s measured); compileall does it on every core. The
# bytecode must be written at install: with PYTHONDONTWRITEBYTECODE set (as on these machines),
# Python never caches what it compiles on import, and every process of the suite compiled dbt,
# pandas and Great Expectations again (4 CPU s per dbt process; docs/decisions.md, 99).
VENV_COMPILE = $(1)/bin/python -m compileall -q -j 0 "$$($(1)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" src
$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(call VENV_COMPILE,$(VENV))
	@touch $@

venv: $(STAMP)  ## create the local virtual environment from the pinned requirements

demo: $(STAMP)  ## generate a demo landing zone and build the warehouse on it
	umask 077; $(BIN)/python -m cdp.cli demo --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED)

# The three static checks share nothing and use one core each: they run side by side (their
# output kept whole per check), then pytest, which spreads over every core itself (xdist).
test: $(STAMP) chromium  ## every check CI runs
	$(MAKE) --no-print-directory --output-sync=target -j3 lint typecheck sqllint
	$(MAKE) --no-print-directory pytest

lint: $(STAMP)  ## ruff on Python
	$(BIN)/ruff check src scripts pytests
	$(BIN)/ruff format --check src scripts pytests

typecheck: $(STAMP)  ## mypy --strict on the package, scripts and tests
	$(BIN)/mypy

sqllint: $(STAMP)  ## sqlfluff (dbt templater, lint target: no key, no database file)
	CDP_TARGET=lint $(BIN)/sqlfluff lint models macros tests analyses

chromium:  ## install Debian's chromium if missing (the auditor pack is opened in it by the tests)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "error: chromium is missing; run: sudo apt-get update && sudo apt-get install -y chromium"; exit 1; fi; }

PACK_DIR ?= data/pack
# After `make demo`, the demo key is used unless a key is configured.
DEMO_KEY_FILE := .secrets/master.key
pack: $(STAMP)  ## the auditor pack (docs, record of processing, notices, lineage, summary, privacy gate) into $(PACK_DIR)
	@if [ -z "$${CDP_MASTER_KEY:-}$${CDP_MASTER_KEY_FILE:-}" ] && [ -f $(DEMO_KEY_FILE) ]; then \
	  echo "make pack: using the demo key $(DEMO_KEY_FILE)"; export CDP_MASTER_KEY_FILE=$(DEMO_KEY_FILE); fi; \
	umask 077; $(BIN)/python -m cdp.pack --out $(PACK_DIR)

# pytest's own exit code is make's: 5 (no test collected) fails too. pyproject.toml runs it on
# one xdist worker per core (-n auto); test-fast runs in one process (-n 0): for its few
# seconds of tests, starting and feeding workers costs more than it saves.
pytest: $(STAMP)  ## every Python and dbt test (builds small generated landing zones), on every core
	$(BIN)/python -m pytest

# The benchmark's own end-to-end test (a whole run at 200 customers): CI runs it after make test-spark.
test-bench: $(STAMP)  ## the benchmark's end-to-end test (pytest -m bench): one real bench_build.py run
	$(BIN)/python -m pytest -m bench -n 0

test-fast: $(STAMP)  ## only the tests that run no dbt (pytest -m "not dbt"), in under a minute
	$(BIN)/python -m pytest -m "not dbt" -n 0

clean:  ## remove generated files (keeps the demo key)
	rm -rf target logs data .pytest_cache .mypy_cache .ruff_cache build/spark spark-warehouse metastore_db derby.log

lock:  ## re-pin requirements.txt from the current environment
	(echo "# Pinned, complete environment (pip freeze). Regenerate: make lock"; \
	 echo "# setuptools and wheel are pinned too: the editable install of src/cdp builds without network."; \
	 $(BIN)/pip freeze --all --exclude-editable | grep -v -e '^-e' -e '^pip==') > requirements.txt

# ----------------------------------------------------------------------------- Spark (issue 19)
# .venv-spark: the project's pinned requirements plus dbt-spark and pyspark (requirements-spark.txt),
# kept apart so the DuckDB venv and `make test` never import pyspark. The keyed functions are
# Java (spark/src), compiled with the JDK's javac against the jars inside pyspark: nothing is
# downloaded at run time. docs/portability.md, "Keyed functions on Spark".
SPARK_VENV := .venv-spark
SPARK_BIN := $(SPARK_VENV)/bin
SPARK_STAMP := $(SPARK_VENV)/.installed
SPARK_BUILD := build/spark
SPARK_JAR := $(SPARK_BUILD)/cdp-spark-udf.jar
JAVA_SOURCES := $(wildcard spark/src/cdp/spark/*.java)
JDK_HINT := install a JDK 17 or newer (on Debian: apt-get install default-jdk-headless)

$(SPARK_STAMP): requirements.txt requirements-spark.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_BIN)/python -m pip install --quiet --no-compile --disable-pip-version-check -r requirements-spark.txt
	$(SPARK_BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(call VENV_COMPILE,$(SPARK_VENV))
	@touch $@

venv-spark: $(SPARK_STAMP)  ## the Spark virtual environment (.venv-spark) from requirements-spark.txt

jdk:  ## install Debian's JDK if java/javac are missing (Spark and the keyed functions' jar need it)
	@command -v javac >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q default-jdk-headless; \
	  else echo "error: javac is missing: $(JDK_HINT)"; exit 1; fi; }

$(SPARK_JAR): $(SPARK_STAMP) $(JAVA_SOURCES) | jdk
	@for tool in java javac jar; do command -v $$tool >/dev/null || { echo "error: '$$tool' not found: $(JDK_HINT)"; exit 1; }; done
	@release=$$(javac -version 2>&1 | sed -E 's/^javac ([0-9]+).*/\1/'); \
	  [ "$$release" -ge 17 ] 2>/dev/null || { echo "error: javac $$release is too old for Spark 4: $(JDK_HINT)"; exit 1; }
	rm -rf $(SPARK_BUILD)/classes && mkdir -p $(SPARK_BUILD)/classes
	jars=$$($(SPARK_BIN)/python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))'); \
	  javac --release 17 -Xlint:all,-path,-processing -Werror -d $(SPARK_BUILD)/classes \
	    -cp "$$(ls $$jars/hive-exec-*-core.jar $$jars/hive-serde-*.jar $$jars/hadoop-client-api-*.jar \
	      $$jars/spark-sql_*.jar $$jars/spark-sql-api_*.jar $$jars/spark-catalyst_*.jar $$jars/spark-core_*.jar $$jars/spark-common-utils_*.jar \
	      $$jars/spark-hive-thriftserver_*.jar \
	      $$jars/scala-library-*.jar | paste -sd:)" \
	    $(JAVA_SOURCES)
	jar --create --file $@.tmp -C $(SPARK_BUILD)/classes . && mv $@.tmp $@

spark-jar: $(SPARK_JAR)  ## compile the keyed functions for Spark (Java) into build/spark/cdp-spark-udf.jar

# The demo on Spark: `make demo` (the landing zone, built on DuckDB, the system of record: the
# purge and erasure run there), then the same landing zone loaded into a local Spark session and
# built with the models ported to Spark so far (cdp spark-build; docs/portability.md says which).
# The JVM reads the key from a file: the demo key, unless CDP_MASTER_KEY_FILE names another.
SPARK_DEMO_DIR := data/spark
demo-spark: $(SPARK_JAR)  ## make demo, then its landing zone built on Spark (the ported models; needs a JDK)
	@if [ -n "$${CDP_MASTER_KEY:-}" ] && [ -z "$${CDP_MASTER_KEY_FILE:-}" ]; then \
	  echo "error: demo-spark: the JVM reads the key from a file; put it in one and set CDP_MASTER_KEY_FILE instead of CDP_MASTER_KEY"; exit 2; fi
	$(MAKE) --no-print-directory demo
	rm -rf $(SPARK_DEMO_DIR)
	umask 077; CDP_MASTER_KEY_FILE="$${CDP_MASTER_KEY_FILE:-$(DEMO_KEY_FILE)}" \
	  $(SPARK_BIN)/python -m cdp.cli spark-build --workdir $(SPARK_DEMO_DIR)

# One Spark session at a time (-n 0); the tests fail, not skip, without Java or pyspark.
# Their short JVMs (the keyed functions, the lockdown) live seconds on tiny tables: the JIT's
# first tier only (C1) is enough, and C2's compiler threads cost them about a third of their CPU
# (docs/decisions.md, 92). The JVMs that run dbt for minutes (the tests' builds and Thrift
# servers: pytests/spark_build.spark_env) and the product's own keep the default: C1 cost the
# shared build 29% more CPU (decision 93). Every JVM of the Spark tests runs the serial collector:
# beside make test on two cores, G1's parallel collector threads wait for cores (decision 96).
test-spark: $(SPARK_JAR)  ## the Spark tests (pytest -m spark) in .venv-spark: keyed functions, key-leak scan
	JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC $${JAVA_TOOL_OPTIONS:-}" $(SPARK_BIN)/python -m pytest -m "spark and not spark_incremental" -n 0

test-spark-incremental: $(SPARK_JAR)  ## Spark's incremental runs equal a full refresh (decisions 91, 100; ~4 min, not in CI)
	JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC $${JAVA_TOOL_OPTIONS:-}" $(SPARK_BIN)/python -m pytest -m spark_incremental -n 0

lock-spark:  ## re-pin requirements-spark.txt: what .venv-spark has beyond requirements.txt
	(echo "# Spark: the project's environment plus dbt-spark (session; PyHive for the thrift method) and pyspark. Regenerate: make lock-spark"; \
	 echo "-r requirements.txt"; \
	 $(SPARK_BIN)/pip freeze --all --exclude-editable | grep -v -e '^-e' -e '^pip==' \
	   | grep -vxF -f <(grep -v '^#' requirements.txt)) > requirements-spark.txt
