# Two commands for a newcomer: `make run` and `make test`. Both start from nothing but
# Python 3.11 and make: they create .venv and install the project into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run demo test bench clean-data

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(INSTALLED)

# Everything on one machine: embedded PostgreSQL, Temporal dev server + UI, worker, API.
run: install
	$(BIN)/python -m runner.run

# The sandbox clock (a month of loan time per second) and four loans living whole lives:
# repaid, late then paid, defaulted, unfunded. Watch them in the Temporal UI.
demo: install
	$(BIN)/python -m runner.demo

# Lint, format and type checks, then the whole test suite against a throwaway PostgreSQL and
# Temporal's real server binaries.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Benchmarks (not part of `make test`): prints a table and writes bench/results.md.
bench: install
	$(BIN)/python -m bench.run

# Drops everything `make run` kept (database, Temporal history, documents).
clean-data:
	rm -rf data
