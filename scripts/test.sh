#!/usr/bin/env bash
# The whole test suite: set-up, lint, types, then every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The end-to-end tests drive the mesh with curl, as a user would; openssl checks certificate
# chains independently of Heddle's own code; Debian's nginx is the legacy ingress of
# examples/nginx-cutover and what converted Ingresses are compared with (it is in /usr/sbin,
# which not every user's PATH has). redis-server backs the rate-limit service's shared counters:
# the tests start their own instances on free loopback ports, never the system service.
# Debian's prometheus is `heddle up --prometheus`'s add-on, which the tests run on free ports
# (its package would otherwise start a service on 9090).
# chromium (headless, driven by playwright) is the browser the dashboard test loads its page in.
# Installed with no service started: Debian's nginx package would start one on port 80,
# where the tests' gateways listen (policy-rc.d answering 101 is Debian's way to say so).
apt_install() {
  local policy=/usr/sbin/policy-rc.d added="" status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
  fi
  apt-get update -qq && apt-get install -y -qq "$1" || status=$?
  if [ -n "$added" ]; then rm -f "$policy"; fi
  return "$status"
}
for tool in curl openssl nginx redis-server prometheus chromium; do
  if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
    if [ "$(id -u)" = 0 ]; then
      apt_install "$tool"
    else
      echo "error: the tests need $tool; install it (apt-get install $tool)" >&2
      exit 1
    fi
  fi
done
# vegeta (MIT; k6 is AGPL) is the open-model load of bench/telemetry_cost.py and its test; it
# is no Debian package, so it is built with Go into ~/.cache/heddle/bin, where the bench looks.
VEGETA_BIN="$HOME/.cache/heddle/bin"
if ! command -v vegeta >/dev/null && [ ! -x "$VEGETA_BIN/vegeta" ]; then
  GO="$(command -v go || echo /usr/local/go/bin/go)"
  if [ -x "$GO" ]; then
    GOBIN="$VEGETA_BIN" "$GO" install github.com/tsenart/vegeta/v12@v12.12.0
  else
    echo "error: the tests need vegeta; build it with: GOBIN=$VEGETA_BIN go install github.com/tsenart/vegeta/v12@v12.12.0" >&2
    exit 1
  fi
fi
echo "== ruff"
.venv/bin/ruff check heddle tests scripts examples bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== import-linter (layer contracts)"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest "$@"
