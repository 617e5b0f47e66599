# Two commands for a newcomer: `make run` and `make test`. Both start from nothing but
# Python 3.11 and make: they create .venv and install the project into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install browser run demo test bench clean-data

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

# The back office's browser tests drive Debian's Chromium through Playwright (Playwright's own
# browser download cannot work here): installed with apt-get once, when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "the browser tests need Chromium: sudo apt-get install -y chromium (Debian/Ubuntu), then make test" >&2; \
	    exit 2; \
	  fi; }

# Lint, format and type checks, then the whole test suite against a throwaway PostgreSQL,
# Temporal's real server binaries and a real browser.
test: install browser
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
