#!/usr/bin/env bash
# The main job: set up, then run examples/hello as a whole local mesh (control plane, and an
# agent + Envoy sidecar + app per workload), send one request through it and show its state.
# The mesh keeps running in the background; stop it with `.venv/bin/heddle down`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
heddle=.venv/bin/heddle
$heddle validate -f examples/hello   # what it runs (examples/hello-extra has a typo on purpose)
$heddle down >/dev/null
$heddle up examples/hello --detach
echo "== heddle exec client -- curl -s http://frontend:8080/"
$heddle exec client -- curl -s http://frontend:8080/
echo
$heddle status
$heddle proxy-status
echo "The mesh is running. Try: $heddle proxy-config routes client; stop it: $heddle down"
