# vstage: `make demo` (install + run the local studio) and `make test` (install + whole suite).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint bench bench-quick clean

install:
	@bash scripts/install.sh

demo: install
	$(PY) -m bots.cli demo

test: install
	bash scripts/test.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/pipeline.py

bench-quick: install
	$(PY) bench/pipeline.py --quick

clean:
	rm -rf var test-artifacts .pytest_cache
