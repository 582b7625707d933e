# Switchboard: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test test-unit test-e2e install lock browsers lint format simulator migrate bench clean

# Exact versions from requirements.lock (`make lock` regenerates it from pyproject.toml), then
# the project itself without resolving anything again.
$(INSTALLED): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install --quiet -r requirements.lock 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install --quiet --no-deps -e . 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import django, celery, openai, rest_framework"
	touch $(INSTALLED)

install: $(INSTALLED)

lock: install
	$(VENV)/bin/pip-compile --quiet --extra dev --strip-extras --no-emit-index-url \
		--no-emit-find-links --no-header -o requirements.lock pyproject.toml

migrate: install
	$(PY) manage.py preflight
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py run_stack

simulator: install
	$(PY) manage.py run_simulator --port 8100

# Debian's chromium for the browser tests (playwright cannot download browsers here).
browsers:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install browsers
	$(PY) -m pytest
	$(PY) -m pytest tests/e2e -p no:cacheprovider

test-unit: install
	$(PY) -m pytest

test-e2e: install browsers
	$(PY) -m pytest tests/e2e

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: install
	$(PY) bench/gateway.py

clean:
	rm -rf var/ db.sqlite3* .pytest_cache
