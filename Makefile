# Two commands on a fresh machine: `make demo` and `make test`. Both create (or reuse) .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# One BLAS thread: our matrices are small (k x k, m x k) and OpenBLAS threads spin-wait badly
# on a busy machine (measured 10x slower on a loaded 2-core VM). Override on the command line.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: demo demo-text test bench lint clean mutation kafka

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m consumers.cli compile  # numba's kernels, once, not in every process (~40 s)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m consumers.cli demo

# The bundled State of the Union addresses (every 4th chunk) through the embedded
# broker into the text consumer; topics and their report in demo-output-text/.
demo-text: $(STAMP)
	$(PY) -m consumers.cli demo text

# Apache Kafka for `onlinenmf broker --apache` and the Kafka tests: its jars, pinned in
# consumers/apache-kafka/pom.xml, fetched once with Maven into ~/.cache/onlinenmf (needs
# Java 17+ to run; ONLINENMF_CACHE_DIR moves the cache).
kafka: $(STAMP)
	$(PY) -m consumers.apache_kafka fetch

# The Kafka tests run against Tansu and Apache Kafka (ONLINENMF_TEST_BROKERS picks); without
# Java the fetch only warns and the Apache Kafka cases skip, saying why.
# TEST_WORKERS processes, whole files each (a file's tests share their brokers and fixtures);
# TEST_WORKERS=0 runs serially. The 25 slowest tests are listed at the end (CI stays under 20 min).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(PY) -m ruff check onlinenmf consumers tests benchmarks
	$(PY) -m consumers.apache_kafka fetch --optional
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

bench: $(STAMP)
	$(PY) -m benchmarks

# Mutation testing of the numeric core with cosmic-ray (not in CI: days for the whole core on
# 2 cores, so run it module by module before a release and after a change of the core):
# benchmarks/mutation.py mutates a copy of the HEAD commit, records the run in
# benchmarks/output/mutation.json and regenerates benchmarks/output/mutation.md (survivors
# explained in benchmarks/mutation_survivors.toml). Narrow it with MUTATE="onlinenmf/x.py"
# (modules) and MUTATION_TESTS="tests/test_x.py ..." (the test paths); MUTATION_CACHE=keep
# keeps the numba cache between mutants (see the script: safe for all but divergence.py);
# MUTATION_ARGS passes more options (--sample N, --timeout S, --worktree). The rest of the
# configuration is [tool.cosmic-ray] in pyproject.toml.
MUTATION_DIR ?= /tmp/onlinenmf-mutation
MUTATE ?=
MUTATION_TESTS ?=
MUTATION_CACHE ?= fresh
MUTATION_ARGS ?=
MUTATION_STAMP := $(VENV)/.installed-mutation

$(MUTATION_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench,mutation]'
	touch $@

mutation: $(MUTATION_STAMP)
	$(PY) -m benchmarks.mutation --modules "$(MUTATE)" --tests "$(MUTATION_TESTS)" \
	    --cache $(MUTATION_CACHE) --dir $(MUTATION_DIR) $(MUTATION_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check onlinenmf consumers tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
