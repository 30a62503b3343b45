# Two commands on a fresh machine: `make demo` and `make test`. Both create (or reuse) .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# One BLAS thread: our matrices are small (k x k, m x k) and OpenBLAS threads spin-wait badly
# on a busy machine (measured 10x slower on a loaded 2-core VM). Override on the command line.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: demo test bench lint clean mutation kafka

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m consumers.cli demo

# Apache Kafka for `onlinenmf broker --apache` and the Kafka tests: its jars, pinned in
# consumers/apache-kafka/pom.xml, fetched once with Maven into ~/.cache/onlinenmf (needs
# Java 17+ to run; ONLINENMF_CACHE_DIR moves the cache).
kafka: $(STAMP)
	$(PY) -m consumers.apache_kafka fetch

# The Kafka tests run against Tansu and Apache Kafka (ONLINENMF_TEST_BROKERS picks); without
# Java the fetch only warns and the Apache Kafka cases skip, saying why.
test: $(STAMP)
	$(PY) -m ruff check onlinenmf consumers tests benchmarks
	$(PY) -m consumers.apache_kafka fetch --optional
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks

# Mutation testing of the numeric core with cosmic-ray (not in CI: days for the whole core on
# 2 cores, so run it module by module before a release and after a change of the core; results
# in benchmarks/output/mutation.md). Narrow it with
# MUTATE="onlinenmf/_growth.py" (modules) and MUTATION_TESTS="tests/test_tracking.py ..." (the
# test paths); the rest of the configuration is [tool.cosmic-ray] in pyproject.toml. It runs in
# a copy of the working tree, because cosmic-ray rewrites the source files in place; the session
# (mutation.sqlite) and the report (report.txt, survivors with their diffs) stay there.
# Numba stays on, with an empty cache for every mutant: numba checks a cached kernel against
# its own file only, so a kernel calling into a mutated module would run stale code.
# MUTATION_CACHE=keep keeps the cache (each mutant then recompiles only its own module, several
# times faster): safe only for a module no other module's compiled code calls, i.e. every
# module of the core but divergence.py (whose per-entry terms solve.py's kernels call).
MUTATION_DIR ?= /tmp/onlinenmf-mutation
MUTATE ?=
MUTATION_TESTS ?=
MUTATION_CACHE ?= fresh
MUTATION_STAMP := $(VENV)/.installed-mutation
CR := $(abspath $(VENV))/bin

$(MUTATION_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench,mutation]'
	touch $@

mutation: $(MUTATION_STAMP)
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)
	tar -cf - --exclude=__pycache__ onlinenmf consumers tests pyproject.toml | tar -xf - -C $(MUTATION_DIR)
	cd $(MUTATION_DIR) && $(CR)/python -c 'import shlex, sys, tomllib, toml; \
	    config = tomllib.load(open("pyproject.toml", "rb"))["tool"]["cosmic-ray"]; \
	    modules, tests, python, cache = sys.argv[1:]; \
	    config["module-path"] = modules.split() or config["module-path"]; \
	    runner, flag, paths = config["test-command"].partition("--doctest-modules"); \
	    command = python + runner.removeprefix("python") + flag + " " + (tests or paths); \
	    config["test-command"] = command if cache == "keep" else "sh -c " + shlex.quote( \
	        "rm -rf numba-cache && NUMBA_CACHE_DIR=numba-cache exec " + command); \
	    toml.dump({"cosmic-ray": config}, open("cosmic-ray.toml", "w"))' \
	    "$(MUTATE)" "$(MUTATION_TESTS)" "$(CR)/python" "$(MUTATION_CACHE)"
	cd $(MUTATION_DIR) && PYTHONPATH=$(MUTATION_DIR) $(CR)/python -c 'import onlinenmf, sys; \
	    sys.exit(0 if onlinenmf.__file__.startswith(sys.argv[1]) else "mutation: imports " + onlinenmf.__file__)' \
	    "$(MUTATION_DIR)"
	cd $(MUTATION_DIR) && $(CR)/cosmic-ray init cosmic-ray.toml mutation.sqlite
	cd $(MUTATION_DIR) && $(CR)/cr-filter-operators mutation.sqlite cosmic-ray.toml
	cd $(MUTATION_DIR) && PYTHONPATH=$(MUTATION_DIR) $(CR)/cosmic-ray baseline cosmic-ray.toml
	cd $(MUTATION_DIR) && PYTHONPATH=$(MUTATION_DIR) $(CR)/cosmic-ray exec cosmic-ray.toml mutation.sqlite
	cd $(MUTATION_DIR) && $(CR)/cr-report mutation.sqlite --surviving-only --show-diff > report.txt
	tail -n 3 $(MUTATION_DIR)/report.txt
	@echo "survivors and their diffs: $(MUTATION_DIR)/report.txt"

lint: $(STAMP)
	$(PY) -m ruff check onlinenmf consumers tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
