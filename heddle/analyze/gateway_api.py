"""Gateway API analyzers: a workload selector that picks the pods of a Gateway API gateway
has no effect there (IST0166): policies reach those gateways by targetRefs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import SECURITY, AnalysisInput, labels_of, spec
from heddle.analyze.messages import INEFFECTIVE_SELECTOR, Message
from heddle.api.diagnostics import ResourceRef

GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name"
POLICIES = ((SECURITY, "AuthorizationPolicy"), (SECURITY, "RequestAuthentication"),
            ("telemetry.istio.io", "Telemetry"))
WASM_PLUGIN = ("extensions.istio.io", "WasmPlugin")
_FIX = "attach the policy to the Gateway with spec.targetRefs instead of spec.selector"


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(gateway: str) -> str:
    return (f"the selector picks pods of the Kubernetes Gateway {gateway!r}, where a "
            "workload selector has no effect")


def _selected(body: Mapping[str, Any], namespace: str,
              gateway_pods: Mapping[str, list[dict[str, str]]]) -> Iterator[str]:
    if body.get("targetRef") or body.get("targetRefs"):
        return
    selector = body.get("selector")
    if not isinstance(selector, dict):
        return
    labels = _dict(selector.get("matchLabels"))
    for pod in gateway_pods.get(namespace, []):
        if all(pod.get(str(k)) == str(v) for k, v in labels.items()):
            yield pod[GATEWAY_NAME]


def _check(world: AnalysisInput) -> Iterator[Message]:
    gateway_pods: dict[str, list[dict[str, str]]] = {}
    for pod in world.pods:
        labels = labels_of(pod)
        if GATEWAY_NAME in labels:
            gateway_pods.setdefault(pod.namespace or "default", []).append(labels)
    for kind in POLICIES:
        for policy in world.of_kind(*kind):
            for gateway in _selected(spec(policy), policy.namespace, gateway_pods):
                yield report(INEFFECTIVE_SELECTOR, policy, _text(gateway), _FIX,
                             ("spec", "selector"))
    for plugin in world.unmanaged:
        if (plugin.api_version.rpartition("/")[0], plugin.kind) != WASM_PLUGIN:
            continue
        namespace = plugin.namespace or "default"
        for gateway in _selected(_dict(plugin.body.get("spec")), namespace, gateway_pods):
            yield Message(INEFFECTIVE_SELECTOR, ResourceRef(plugin.kind, namespace, plugin.name),
                          _text(gateway), _FIX, plugin.source, ("spec", "selector"))


ANALYZERS = (
    Analyzer("k8sgateway.SelectorAnalyzer",
             "Checks that selectors are effective for Kubernetes gateways",
             frozenset({*POLICIES, WASM_PLUGIN, ("", "Pod")}), _check),
)
