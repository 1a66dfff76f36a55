#!/usr/bin/env bash
# The whole test suite: set-up, lint, types, then every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The end-to-end tests drive the mesh with curl, as a user would; openssl checks certificate
# chains independently of Heddle's own code.
for tool in curl openssl; do
  if ! command -v "$tool" >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq "$tool"
    else
      echo "error: the tests need $tool; install it (apt-get install $tool)" >&2
      exit 1
    fi
  fi
done
echo "== ruff"
.venv/bin/ruff check heddle tests scripts examples bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== import-linter (layer contracts)"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest "$@"
