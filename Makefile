# dosi: `make demo` to try it, `make test` for every check CI runs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Lint only the trees that exist (git keeps no empty folders).
CODE := $(wildcard src tests bench)

.PHONY: demo test bench fmt clean web

demo: $(VENV)/.installed web
	$(VENV)/bin/dosi demo

# The dashboard's front end (web/: Vite, Leaflet, Chart.js from the npm lockfile), built
# into the package (src/dosi/web/static/), which `dosi web` and `dosi demo` serve.
WEB_BUILT := src/dosi/web/static/index.html
web: $(WEB_BUILT)

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(WEB_BUILT): web/node_modules/.installed web/index.html web/vite.config.ts web/tsconfig.json $(wildcard web/src/*)
	cd web && npm run build --silent

# The hub's behaviour suite runs on both storage backends (PostgreSQL tests start a
# private cluster; without PostgreSQL installed they skip, and fail under CI=true).
DOSI_TEST_BACKENDS ?= sqlite,postgres
export DOSI_TEST_BACKENDS

test: $(VENV)/.installed-dev web
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	$(VENV)/bin/mypy
	$(PY) -m pytest

# Every bench/*_bench.py script, one after another (e.g. make bench BENCH_ARGS=--quick).
BENCH_ARGS ?=
bench: $(VENV)/.installed-dev
	@set -e; for script in $(wildcard bench/*_bench.py); do \
		echo "== $$script $(BENCH_ARGS)"; $(PY) $$script $(BENCH_ARGS); done

fmt: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix $(CODE)
	$(VENV)/bin/ruff format $(CODE)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis \
		web/node_modules src/dosi/web/static
	find src tests -name __pycache__ -type d -prune -exec rm -rf {} +

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.installed
