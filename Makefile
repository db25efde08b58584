# Two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install serve test chromium lint bench soak clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(INSTALLED)

## Serve the API on 127.0.0.1:$${PORT:-8000} with gunicorn, on the embedded SQLite file unless DATABASE_URL is set.
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

## Measure the targets of the performance issue (5-10 minutes) and write bench/RESULTS.md; not part of `make test`.
bench: $(INSTALLED)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run

## Soak test with faults (about 2 minutes, on a throwaway PostgreSQL cluster of its own, 127.0.0.1 only); writes bench/SOAK.md; not part of `make test`.
soak: $(INSTALLED)
	$(BIN)/python -m bench.soak

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache
