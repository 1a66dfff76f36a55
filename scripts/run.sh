#!/usr/bin/env bash
# The main job. Until the local mesh runtime lands this validates the example meshes,
# as `istioctl validate` would.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/heddle validate -f examples
