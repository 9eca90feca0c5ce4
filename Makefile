# Two commands on a fresh Debian machine: `make run` (serve on the embedded default) and
# `make test` (the whole suite, exactly what CI runs). Both set everything up first, through
# hack/install.sh: the same install definition and pins (constraints.txt) as the Dockerfiles.
VENV ?= .venv
PRODUCTION_VENV ?= .venv-production
INSTALL_INPUTS := constraints.txt pyproject.toml runtime/pyproject.toml operator/pyproject.toml \
	runtime/contract/pyproject.toml runtime/apt-packages.txt hack/dev-apt-packages.txt hack/install.sh hack/setup.sh
STAMP := $(VENV)/.installed
PRODUCTION_STAMP := $(PRODUCTION_VENV)/.installed
# The production engines' tests (XTTS on torch), run in their own environment.
PRODUCTION_TESTS := tests/unit/engines/test_tts_xtts.py

.PHONY: setup setup-production run test test-fast test-production test-install bench bench-autoscale lint dub console clean

setup: $(STAMP)
setup-production: $(PRODUCTION_STAMP)

$(STAMP): $(INSTALL_INPUTS)
	VENV=$(VENV) bash hack/setup.sh main
	touch $@

$(PRODUCTION_STAMP): $(INSTALL_INPUTS)
	PRODUCTION_VENV=$(PRODUCTION_VENV) bash hack/setup.sh production
	touch $@

run: setup
	$(VENV)/bin/livedub serve

# Everything CI runs: the suite, the production engines in their environment, and the images'
# install steps replayed into fresh virtualenvs (no Docker needed).
test: setup setup-production
	$(VENV)/bin/pytest
	LIVEDUB_PRODUCTION_TESTS=1 $(PRODUCTION_VENV)/bin/pytest $(PRODUCTION_TESTS)
	bash hack/check-install.sh

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

test-production: setup-production
	LIVEDUB_PRODUCTION_TESTS=1 $(PRODUCTION_VENV)/bin/pytest $(PRODUCTION_TESTS)

test-install:
	bash hack/check-install.sh

dub: setup
	$(VENV)/bin/livedub dub ../shared/data/fleurs/fleurs-en-000.ogg --to es -o out/fleurs-en-000.es.wav

bench: setup
	$(VENV)/bin/python -m bench.run

# The operator's scaling code against a cluster model, four traffic profiles (seconds; no cluster):
# bench/results/autoscale.json, autoscale_*.png and the README's autoscaling table.
bench-autoscale: setup
	$(VENV)/bin/python -m bench.autoscale --readme

lint: setup
	$(VENV)/bin/ruff check runtime operator tests bench hack
	$(VENV)/bin/mypy  # packages and search path: pyproject.toml [tool.mypy]
	$(VENV)/bin/lint-imports

# Rebuild the /console page from runtime/console into the package (the built file is committed:
# runtime/console/vite.config.ts says why; tests/unit/runtime/test_console_bundle.py checks it).
console:
	cd runtime/console && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) $(PRODUCTION_VENV) .pytest_cache out runtime/console/node_modules
