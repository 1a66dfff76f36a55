#!/usr/bin/env bash
# The whole test suite: set-up, lint, types, then every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check heddle tests scripts examples
echo "== mypy --strict"
.venv/bin/mypy
echo "== import-linter (layer contracts)"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest "$@"
