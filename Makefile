# Two commands on a fresh Debian machine: `make run` (serve on the embedded default) and
# `make test` (the whole suite, exactly what CI runs). Both set everything up first.
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast bench lint dub clean

setup: $(STAMP)

$(STAMP): pyproject.toml hack/setup.sh
	VENV=$(VENV) bash hack/setup.sh
	touch $@

run: setup
	$(VENV)/bin/livedub serve

test: setup
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

dub: setup
	$(VENV)/bin/livedub dub ../shared/data/fleurs/fleurs-en-000.ogg --to es -o out/fleurs-en-000.es.wav

bench: setup
	$(VENV)/bin/python -m bench.run

lint: setup
	$(VENV)/bin/ruff check runtime operator tests bench
	$(VENV)/bin/mypy  # packages and search path: pyproject.toml [tool.mypy]

clean:
	rm -rf $(VENV) .pytest_cache out
