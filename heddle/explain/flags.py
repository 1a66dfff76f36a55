"""Envoy's response flags (`%RESPONSE_FLAGS%`, the access log's fourth field), in words.

Light on purpose: `heddle explain` decodes a log line before it asks the control plane
anything."""

from __future__ import annotations

# Short name -> what happened, as a sentence about the request.
RESPONSE_FLAGS: dict[str, str] = {
    "UH": "no healthy upstream host: the cluster has no endpoint, or none is healthy "
          "(all failed health checks or were ejected as outliers)",
    "UF": "the connection to the upstream host failed",
    "UO": "upstream overflow: a circuit breaker (connection pool or pending-request limit) "
          "refused the request",
    "NR": "no route: no virtual host or route of the proxy matched the request, or no "
          "filter chain accepted the connection",
    "URX": "the upstream retry limit (HTTP) or connect attempt limit (TCP) was reached",
    "NC": "no cluster: the route names a cluster the proxy does not have",
    "DT": "the request or connection exceeded its maximum duration",
    "DC": "the downstream (client) connection was terminated",
    "LH": "the local service failed its health check",
    "UT": "the upstream request timed out (the route's timeout)",
    "LR": "the connection was reset locally",
    "UR": "the upstream reset the connection",
    "UC": "the upstream connection was terminated",
    "DI": "the request was delayed by fault injection",
    "FI": "the request was aborted by fault injection",
    "RL": "the request was rate limited (a local token bucket or the rate-limit service)",
    "UAEX": "an external authorization service (a CUSTOM AuthorizationPolicy) denied it",
    "RLSE": "the rate-limit service failed to answer, and the filter refuses on failure",
    "IH": "a header had an invalid value (strict header checking)",
    "SI": "the stream idle timeout was reached",
    "DPE": "the downstream request had an HTTP protocol error",
    "UPE": "the upstream response had an HTTP protocol error",
    "UMSDR": "the upstream request reached its maximum stream duration",
    "OM": "the overload manager refused the request",
    "DF": "the upstream host's DNS resolution failed",
    "DO": "the request was dropped by the cluster's drop-overload setting",
    "UDO": "the upstream was dropped by the drop-overload setting",
}


def decode(flags: str) -> list[tuple[str, str]]:
    """`"UH,URX"` -> each flag with its meaning; `-` (or "") is none. An unknown flag is
    kept with a note, so a newer Envoy's flags still show."""
    if flags in ("", "-"):
        return []
    return [(flag, RESPONSE_FLAGS.get(flag, "a flag this version of Heddle does not know"))
            for flag in flags.split(",") if flag]
