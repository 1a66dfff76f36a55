"""`python -m heddle.agent`: the agent beside one workload's Envoy (see heddle.agent.main)."""

import sys

# The agent speaks no TLS from Python: gRPC brings its own, and its HTTP (readiness, Envoy's
# admin API) is plaintext on the pod IP. Without this, asyncio would load the ssl module
# (and OpenSSL with it: 4.5 MB of every agent's RSS) for nothing; asyncio works without it.
sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

from heddle.agent.main import main  # noqa: E402

main()
