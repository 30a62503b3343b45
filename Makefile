# Two commands on a fresh machine: `make demo` and `make test`. Both create (or reuse) .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# One BLAS thread: our matrices are small (k x k, m x k) and OpenBLAS threads spin-wait badly
# on a busy machine (measured 10x slower on a loaded 2-core VM). Override on the command line.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m onlinenmf.cli demo

test: $(STAMP)
	$(PY) -m ruff check onlinenmf consumers tests benchmarks
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks

lint: $(STAMP)
	$(PY) -m ruff check onlinenmf consumers tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
