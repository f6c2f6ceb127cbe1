#!/usr/bin/env bash
# The whole suite: lint and type check, then pytest (unit, real local models, headless Chromium).
# Services the tests need are started by the tests' own fixtures and stopped after.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/mypy  # packages, plugin and strict modules: [tool.mypy] in pyproject.toml
mkdir -p test-artifacts
exec .venv/bin/python -m pytest -q -ra --durations=15 "$@"
