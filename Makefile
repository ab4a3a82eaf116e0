# `make demo` and `make test` do all the set-up: they create .venv and install the project.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	@echo "== agent quickstart: train -> register -> validate -> human approval -> serve =="
	$(VENV)/bin/agent quickstart --as dana
	@echo "(The agent command lives in $(VENV)/bin: run 'source $(VENV)/bin/activate' first.)"

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) benchmarks/evaluation.py
	$(PY) benchmarks/evaluation_regression.py
	$(PY) benchmarks/optimizer.py
	$(PY) benchmarks/serving.py
	$(PY) benchmarks/agent_overhead.py
	$(PY) benchmarks/drift.py
	$(PY) benchmarks/cli.py

clean:
	rm -rf .modelops .pytest_cache .ruff_cache
