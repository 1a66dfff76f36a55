"""Istio's semantic validation: rules that no schema states, one function per kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from heddle.api.problems import FieldProblem
from heddle.api.semantics.authentication import (
    check_peer_authentication,
    check_request_authentication,
)
from heddle.api.semantics.authorization_policy import check_authorization_policy
from heddle.api.semantics.common import mapping
from heddle.api.semantics.destination_rule import check_destination_rule
from heddle.api.semantics.envoy_filters import check_envoy_filter
from heddle.api.semantics.gateway import check_gateway
from heddle.api.semantics.kuadrant import check_rate_limit_policy
from heddle.api.semantics.rate_limits import check_backend_traffic_policy
from heddle.api.semantics.security import check_dry_run_annotation
from heddle.api.semantics.service_entry import (
    check_service_entry,
    check_workload_entry,
    check_workload_group,
)
from heddle.api.semantics.sidecar import check_sidecar
from heddle.api.semantics.telemetry import check_telemetry
from heddle.api.semantics.virtualservice import check_virtual_service

SpecCheck = Callable[[dict[str, Any]], list[FieldProblem]]
# Checks that read the object's annotations beside its spec.
AnnotatedCheck = Callable[[dict[str, Any], dict[str, Any]], list[FieldProblem]]

CHECKS: dict[tuple[str, str], SpecCheck] = {
    ("networking.istio.io", "WorkloadEntry"): check_workload_entry,
    ("networking.istio.io", "WorkloadGroup"): check_workload_group,
    ("networking.istio.io", "EnvoyFilter"): check_envoy_filter,
    ("security.istio.io", "AuthorizationPolicy"): check_authorization_policy,
    ("security.istio.io", "RequestAuthentication"): check_request_authentication,
    ("security.istio.io", "PeerAuthentication"): check_peer_authentication,
    ("gateway.envoyproxy.io", "BackendTrafficPolicy"): check_backend_traffic_policy,
    ("telemetry.istio.io", "Telemetry"): check_telemetry,
}
ANNOTATED_CHECKS: dict[tuple[str, str], AnnotatedCheck] = {
    ("kuadrant.io", "RateLimitPolicy"): check_rate_limit_policy,
}
# Checks that read the object's name or annotations (Istio's rules on config.Meta).
MetadataCheck = Callable[[dict[str, Any], dict[str, Any]], list[FieldProblem]]
METADATA_CHECKS: dict[tuple[str, str], MetadataCheck] = {
    ("networking.istio.io", "Gateway"): check_gateway,
    ("networking.istio.io", "VirtualService"): check_virtual_service,
    ("networking.istio.io", "DestinationRule"): check_destination_rule,
    ("networking.istio.io", "Sidecar"): check_sidecar,
    ("networking.istio.io", "ServiceEntry"): check_service_entry,
}


def check_semantics(group: str, kind: str, body: dict[str, Any],
                    metadata: Mapping[str, Any] | None = None) -> list[FieldProblem]:
    """The kind's own rules on its spec, and for every Istio kind the rules Istio applies
    to an object's metadata before its spec (the `istio.io/dry-run` annotation)."""
    spec = body.get("spec")
    problems: list[FieldProblem] = []
    if group.endswith("istio.io"):
        annotations = mapping(dict(metadata or {}).get("annotations"))
        problems += check_dry_run_annotation(group, kind, mapping(spec), annotations)
    check = CHECKS.get((group, kind))
    if check is not None and isinstance(spec, dict):
        problems += check(spec)
    with_metadata = METADATA_CHECKS.get((group, kind))
    if with_metadata is not None and isinstance(spec, dict):
        problems += with_metadata(spec, dict(metadata or {}))
    annotated = ANNOTATED_CHECKS.get((group, kind))
    if annotated is not None and isinstance(spec, dict):
        problems += annotated(spec, mapping(dict(metadata or {}).get("annotations")))
    return problems
