"""Which workload labels a resource selects, in each of the shapes Istio kinds use."""

from __future__ import annotations

from typing import Any

from heddle.api.models import (
    AuthorizationPolicySpec,
    EnvoyFilterSpec,
    GatewaySpec,
    PeerAuthenticationSpec,
    RequestAuthenticationSpec,
    ServiceEntrySpec,
    ServiceSpec,
    SidecarSpec,
    TelemetrySpec,
)
from heddle.api.resource import Resource

_BY_MATCH_LABELS = (AuthorizationPolicySpec, PeerAuthenticationSpec, RequestAuthenticationSpec,
                    TelemetrySpec)


def selector_of(resource: Resource[Any]) -> dict[str, str] | None:
    """The labels a resource's workload selector requires; None when it selects no workloads.

    An empty dict selects every workload in the namespace (a policy without a selector).
    """
    spec = resource.spec
    if isinstance(spec, _BY_MATCH_LABELS):
        return dict(spec.selector.matchLabels or {}) if spec.selector is not None else {}
    if isinstance(spec, SidecarSpec | EnvoyFilterSpec):
        selector = spec.workloadSelector
        return dict(selector.labels or {}) if selector is not None else {}
    if isinstance(spec, ServiceEntrySpec):  # without a selector it names its own endpoints
        entry_selector = spec.workloadSelector
        return None if entry_selector is None or entry_selector.labels is None \
            else dict(entry_selector.labels)
    if isinstance(spec, GatewaySpec):
        return dict(spec.selector or {})
    if isinstance(spec, ServiceSpec):
        return None if spec.selector is None else dict(spec.selector)
    return None


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
