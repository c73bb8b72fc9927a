# wasikv developer commands. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WORLD  := wasikv:app/command

.PHONY: install demo test test-fast bench profile lint typecheck bindings check-bindings clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

examples/counter/counter.wasm: examples/counter/app.py $(STAMP) $(shell find guest/wasikv_sdk -name '*.py' -o -name '*.wit' -o -name '*.toml')
	$(PY) -m wasikv componentize examples/counter -o $@

## Build the counter example and run it on the default SQLite store (run twice: it counts up).
demo: examples/counter/counter.wasm
	$(VENV)/bin/wasikv run examples/counter/counter.wasm

## Run the whole test suite (Redis-backed tests need 127.0.0.1:6379) in TEST_PROCESSES pytest processes.
## Three beat two on two cores: many tests wait on servers and subprocesses.
TEST_PROCESSES ?= 3
test: $(STAMP)
	WASIKV_PREBUILD=1 $(PY) -m pytest -q -n $(TEST_PROCESSES)

## The tests that need no guest component (no componentize-py build, no compile of one).
## Building one fails (WASIKV_TEST_NO_BUILD), so a test missing its `component` mark shows.
test-fast: $(STAMP)
	WASIKV_TEST_NO_BUILD=1 PYTHONPATH=tests/no_build $(PY) -m pytest -q -n $(TEST_PROCESSES) -m "not component"

## Benchmarks: our host vs wasmtime's own Rust host and a generic-conversion host, in one run.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m benchmarks.run

## Where one HTTP request's CPU goes (perf on `wasikv up` under the bench load; needs perf).
profile: $(STAMP)
	$(PY) -m benchmarks.profile_http

lint: $(STAMP)
	$(VENV)/bin/ruff check host guest tests examples benchmarks
	$(VENV)/bin/ruff format --check host guest tests examples benchmarks
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## Regenerate the SDK's copy of wit/ and its binding stubs (never edit those by hand).
bindings: $(STAMP)
	$(PY) tools/bindings.py

check-bindings: $(STAMP)
	$(PY) tools/bindings.py --check

clean:
	rm -rf $(VENV) .pytest_cache .wasikv-test examples/counter/counter.wasm
