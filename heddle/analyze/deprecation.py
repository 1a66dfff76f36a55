"""Deprecated fields and kinds (IST0002): `fault.delay.percent` (use `percentage`), a
Sidecar's `outboundTrafficPolicy.egressProxy` (ignored), and the removed rbac.istio.io
kinds' CustomResourceDefinitions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import ISTIO, AnalysisInput, spec
from heddle.analyze.messages import DEPRECATED, Message
from heddle.api.diagnostics import ResourceRef

CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")
_REMOVED_RBAC = {"ClusterRbacConfig", "RbacConfig", "ServiceRole", "ServiceRoleBinding"}


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _check(world: AnalysisInput) -> Iterator[Message]:
    for vs in world.of_kind(ISTIO, "VirtualService"):
        for i, rule in enumerate(spec(vs).get("http") or []):
            delay = _dict(_dict(_dict(rule).get("fault")).get("delay"))
            if isinstance(delay.get("percent"), int) and delay["percent"] > 0:
                yield report(DEPRECATED, vs, "HTTPRoute.fault.delay.percent is deprecated; "
                             "use HTTPRoute.fault.delay.percentage",
                             "write `percentage: {value: N}` instead of `percent: N`",
                             ("spec", "http", i, "fault", "delay", "percent"))
    for sidecar in world.of_kind(ISTIO, "Sidecar"):
        policy = _dict(spec(sidecar).get("outboundTrafficPolicy"))
        if policy.get("egressProxy") is not None:
            yield report(DEPRECATED, sidecar, "OutboundTrafficPolicy.EgressProxy ignored",
                         "remove outboundTrafficPolicy.egressProxy; route egress with a "
                         "ServiceEntry and an egress gateway",
                         ("spec", "outboundTrafficPolicy", "egressProxy"))
    for crd in world.unmanaged:
        if (crd.api_version.rpartition("/")[0], crd.kind) != CRD:
            continue
        body = _dict(crd.body.get("spec"))
        kind = _dict(body.get("names")).get("kind")
        if body.get("group") == "rbac.istio.io" and kind in _REMOVED_RBAC:
            yield Message(DEPRECATED, ResourceRef(crd.kind, "", crd.name),
                          f"Custom resource type rbac.istio.io {kind} is removed",
                          "use AuthorizationPolicy (security.istio.io) instead", crd.source)


ANALYZERS = (
    Analyzer("deprecation.DeprecationAnalyzer", "Checks for deprecated Istio types and fields",
             frozenset({(ISTIO, "VirtualService"), (ISTIO, "Sidecar"), CRD}), _check),
)
