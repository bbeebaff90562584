# Every target bootstraps its own virtualenv in .venv with plain venv + pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test test-e2e lint bench demo clean vectors

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

dev: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term --cov-report=xml:build/coverage.xml
	$(BIN)/python -m coverage report --include='protocol/*' --fail-under=95 --skip-covered

# The fault-injection suite alone (separate processes; also part of `make test`).
test-e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check protocol
	$(BIN)/mypy --strict protocol gateway node

bench: $(STAMP)
	$(BIN)/python bench/protocol_bench.py
	$(BIN)/python bench/log_bench.py
	$(BIN)/python bench/gateway_bench.py
	$(BIN)/python bench/node_bench.py

vectors: $(STAMP)
	$(BIN)/python -m tests.vectors.generate

demo: $(STAMP)
	$(BIN)/heliograph demo

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .coverage
