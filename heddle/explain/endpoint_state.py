"""What a proxy's Envoy knows of a cluster's hosts right now (its admin API's
`/clusters?format=json`): healthy, ejected as an outlier, failing active health checks, or
unhealthy by EDS. Light: the CLI reads it from the workload's Envoy after the control plane
has explained the configuration."""

from __future__ import annotations

from typing import Any

# Envoy's health flags, in words.
_FLAGS = {
    "failed_outlier_check": "ejected as an outlier (outlierDetection)",
    "failed_active_health_check": "failing active health checks",
    "pending_active_hc": "waiting for its first health check",
    "pending_dynamic_removal": "being removed",
    "active_hc_timeout": "health check timed out",
    "excluded_via_immediate_hc_fail": "excluded: failed an immediate health check",
}


def host_states(clusters: dict[str, Any], cluster: str) -> list[tuple[str, str]]:
    """Each host of `cluster` as (address:port, state); [] if Envoy has no such cluster."""
    found = []
    for status in clusters.get("cluster_statuses", []):
        if status.get("name") != cluster:
            continue
        for host in status.get("host_statuses", []):
            socket = (host.get("address") or {}).get("socket_address") or {}
            address = f"{socket.get('address', '?')}:{socket.get('port_value', '?')}"
            health = host.get("health_status") or {}
            problems = [words for flag, words in _FLAGS.items() if health.get(flag)]
            eds = health.get("eds_health_status", "HEALTHY")
            if eds not in ("HEALTHY", "UNKNOWN"):
                problems.append(f"{eds.lower()} by EDS")
            found.append((address, "; ".join(problems) or "healthy"))
    return found


def summary(cluster: str, states: list[tuple[str, str]]) -> str:
    """A sentence for the page's verdict when no host of the cluster can take a request."""
    if not states:
        return ""
    ejected = [a for a, s in states if "outlier" in s]
    if len(ejected) == len(states):
        return (f"every host of {cluster} ({', '.join(ejected)}) is ejected as an outlier "
                "right now (the DestinationRule's outlierDetection), so there is no healthy "
                "upstream")
    if all(s != "healthy" for _, s in states):
        return f"no host of {cluster} is healthy right now"
    return ""
