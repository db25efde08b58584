# Two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install serve test lint bench soak clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(INSTALLED)

## Serve the API on 127.0.0.1:$${PORT:-8000} with gunicorn, on the embedded SQLite file unless DATABASE_URL is set.
serve: $(INSTALLED)
	$(BIN)/authz serve

## Install, lint and run the whole test suite (SQLite always, PostgreSQL when it is reachable).
test: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache
