#!/usr/bin/env bash
# The whole suite: lint, then pytest (unit, real local models, headless Chromium).
# Services the tests need are started by the tests' own fixtures and stopped after.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
mkdir -p test-artifacts
exec .venv/bin/python -m pytest -q -ra --durations=15 "$@"
