"""What Istio takes a field left unset to mean, in one place: the registry, the model and the
translators read these rather than writing the values where they apply them.

The CRD schemas of Istio's networking kinds declare no defaults (Istio applies them in
code), so the loader cannot fill them in; these are those values.
"""

from __future__ import annotations

# ServiceEntry and WorkloadEntry
SERVICE_ENTRY_LOCATION = "MESH_EXTERNAL"
SERVICE_ENTRY_RESOLUTION = "NONE"
SERVICE_ACCOUNT = "default"
WORKLOAD_WEIGHT = 1

# Sidecar outboundTrafficPolicy (and the mesh config's): unknown hosts are passed through.
OUTBOUND_TRAFFIC_MODE = "ALLOW_ANY"
# The mesh config's extension providers: how long an external authorizer may take.
EXT_AUTHZ_TIMEOUT = "0.6s"

# VirtualService http rules
ROUTE_TIMEOUT_SECONDS = 0  # no timeout
REDIRECT_CODE = 301
FAULT_PERCENT = 100.0  # of requests a delay or abort applies to
FAULT_FIXED_DELAY = "0s"
# Retries when a rule sets none: twice, to another host, on connection failures and 503s.
RETRY_ATTEMPTS = 2
RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
RETRIABLE_STATUS_CODES = (503,)
RETRY_HOST_SELECTION_ATTEMPTS = 5

# DestinationRule trafficPolicy
LOAD_BALANCER = "LEAST_REQUEST"
RING_HASH_MINIMUM_SIZE = 1024  # the deprecated consistentHash.minimumRingSize, unset
CIRCUIT_BREAKER_LIMIT = 2**32 - 1  # every threshold a connection pool leaves unset
CONNECT_TIMEOUT_SECONDS = 10  # the mesh config's connectTimeout
PANIC_THRESHOLD_PERCENT = 0.0  # outlierDetection.minHealthPercent

# A redirect `uri` starting with this replaces only the matched prefix: Istio's own marker,
# which its gateway controller writes for a Gateway API ReplacePrefixMatch redirect.
REDIRECT_PREFIX_MARKER = "%PREFIX()%"
