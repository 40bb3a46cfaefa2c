# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
# Read-only data beside the checkout (tests that need it skip without it; bench requires it).
SHARED_DATA ?= ../shared/data

.PHONY: demo test test-fast lint bench docs

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/chatlens demo

# The full suite, what CI runs: real redis-servers, subprocess workers, tiny and real models.
test: $(VENV)/.installed
	scripts/ensure-redis-server
	$(PY) -m pytest -q

# The fast lane: no subprocess, no real model, no redis-server; under a minute.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(VENV)/bin/chatlens bench --file $(SHARED_DATA)/topical-chat-sample/test.csv --messages 2000 --json bench.json

$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[docs]'
	touch $@

# The site: strict, so a broken link, a missing page or a failing reference generator fails the build.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site
