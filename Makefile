# Two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# oso 0.27 publishes wheels for CPython up to 3.12 only: use $(PYTHON) if it is a 3.11 or 3.12, else the
# first such interpreter found (python3.12, python3.11, pyenv's, uv's). Empty when there is none.
SUPPORTED := import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))
CHOSEN_PYTHON := $(shell for candidate in "$(PYTHON)" python3 python3.12 python3.11 \
		$$(ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.12*/bin/python3 "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.11*/bin/python3 2>/dev/null | sort -rV) \
		$$(command -v uv >/dev/null 2>&1 && uv python find 3.12 2>/dev/null); do \
	"$$candidate" -c '$(SUPPORTED)' >/dev/null 2>&1 && { command -v "$$candidate"; break; }; done)
INSTALLED := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install serve test chromium lint bench soak clean python

$(INSTALLED): pyproject.toml
	@test -n "$(CHOSEN_PYTHON)" || { echo "No CPython 3.11 or 3.12 found ($(PYTHON) is $$($(PYTHON) --version 2>&1)); oso 0.27 has no wheels for newer ones: install python3.12 (apt install python3.12-venv, pyenv install 3.12, or uv python install 3.12) and run make again." >&2; exit 1; }
	@[ -x $(BIN)/python ] && $(BIN)/python -c '$(SUPPORTED)' 2>/dev/null || rm -rf $(VENV)
	$(CHOSEN_PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

## Print the interpreter the virtual environment is made with (CPython 3.11 or 3.12; see CHOSEN_PYTHON).
python:
	@test -n "$(CHOSEN_PYTHON)" && echo "$(CHOSEN_PYTHON)" || { echo "no CPython 3.11 or 3.12 found" >&2; exit 1; }

install: $(INSTALLED)

## Serve the API on 127.0.0.1:$${PORT:-8000} with granian (AUTHZ_WORKERS, AUTHZ_THREADS), on the embedded SQLite file unless DATABASE_URL is set.
serve: $(INSTALLED)
	$(BIN)/authz serve

## Install, lint, check the layers and run the whole test suite (SQLite always, PostgreSQL when it is reachable).
## The layers (docs/architecture.md) are import-linter contracts in pyproject.toml: an import against them fails the run.
## Debian's chromium drives the auditor pages' browser test; where it cannot be installed, that test says so and skips.
test: $(INSTALLED) chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest

chromium:
	@command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "chromium could not be installed: the browser test will skip"

## Measure the targets of the performance issue (5-10 minutes) and write bench/RESULTS.md; with BENCH_LARGE=1 also the 1,000,000-account shape (bench/LARGE.md, 20-30 minutes more); not part of `make test`.
bench: $(INSTALLED)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.decision_log postgres
	@if [ -n "$$BENCH_LARGE" ] && [ "$$BENCH_LARGE" != 0 ]; then \
		$(BIN)/python -m bench.large && $(BIN)/python -m bench.audit_scale --accounts 1000000; fi

## Soak test with faults (about 2 minutes, on a throwaway PostgreSQL cluster of its own, 127.0.0.1 only); writes bench/SOAK.md; not part of `make test`.
soak: $(INSTALLED)
	$(BIN)/python -m bench.soak

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache
