"""The Gateway API conformance runner: the upstream suite's HTTPRoute and GRPCRoute scenarios
(`../shared/corpus/gateway-api/conformance/`) run against a local Heddle mesh, their request
tables ported as data (`scenarios/*.yaml`), the backends an echo server (`echo.py`)."""
