"""Which gateway proxies a mesh runs: the deployment seam.

`gateway_workloads(snapshot)` lists the standalone Envoys (router mode) a runtime starts,
as Istio's installation and its automated deployment do: the default ingress gateway
(`istio-system/istio-ingressgateway`, labelled `istio: ingressgateway` and `app:
istio-ingressgateway`) unless an `IstioOperator` turns it off, and one per Gateway API
`Gateway` whose `GatewayClass` is Heddle's (`NAME-CLASS` in the Gateway's namespace,
labelled `gateway.networking.k8s.io/gateway-name: NAME`, as Istio names its deployments).
Addresses are the runtime's business: this says only who the gateways are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heddle.api.resource import UnmanagedObject
from heddle.model.snapshot import MeshSnapshot

INGRESS_NAMESPACE = "istio-system"
INGRESS_NAME = "istio-ingressgateway"
INGRESS_LABELS = (("app", INGRESS_NAME), ("istio", "ingressgateway"))
# The controller names whose GatewayClasses Heddle deploys: Istio's own (so manifests
# written for Istio work unchanged) and Heddle's.
CONTROLLER_NAMES = ("istio.io/gateway-controller", "heddle.dev/gateway-controller")
# Classes Istio (and Heddle) provide without a GatewayClass resource.
BUILTIN_CLASSES = {"istio": CONTROLLER_NAMES[0], "heddle": CONTROLLER_NAMES[1]}
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_API = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class GatewayWorkload:
    """One gateway proxy to run: its identity and the labels Gateways select it by."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    service_account: str
    source: str  # what asked for it, for people: "default ingress gateway", "Gateway ns/name"

    @property
    def key(self) -> str:
        return f"{self.name}.{self.namespace}"


def default_ingress_gateway() -> GatewayWorkload:
    return GatewayWorkload(INGRESS_NAME, INGRESS_NAMESPACE, INGRESS_LABELS,
                           f"{INGRESS_NAME}-service-account", "default ingress gateway")


def _ingress_enabled(objects: tuple[UnmanagedObject, ...]) -> bool:
    """False when an IstioOperator lists `istio-ingressgateway` (or an ingress gateway
    without a name) under `spec.components.ingressGateways` with `enabled: false`."""
    for obj in objects:
        if obj.kind != "IstioOperator" or not obj.api_version.startswith("install.istio.io/"):
            continue
        spec: Any = obj.body.get("spec")
        components = spec.get("components") if isinstance(spec, dict) else None
        gateways = components.get("ingressGateways") if isinstance(components, dict) else None
        for gateway in gateways if isinstance(gateways, list) else []:
            if not isinstance(gateway, dict):
                continue
            if gateway.get("name", INGRESS_NAME) == INGRESS_NAME and \
                    gateway.get("enabled") is False:
                return False
    return True


def _heddle_class(snapshot: MeshSnapshot, class_name: str) -> bool:
    found = snapshot.get(GATEWAY_API, "GatewayClass", "", class_name)
    if found is not None:
        return str((found.body.get("spec") or {}).get("controllerName", "")) in CONTROLLER_NAMES
    return class_name in BUILTIN_CLASSES


def gateway_workloads(snapshot: MeshSnapshot,
                      unmanaged: tuple[UnmanagedObject, ...] = ()) -> list[GatewayWorkload]:
    """Every gateway proxy the configuration asks for, the default ingress gateway first.
    `unmanaged`: the kept objects of kinds Heddle does not model (an IstioOperator)."""
    found = [default_ingress_gateway()] if _ingress_enabled(unmanaged) else []
    for gateway in snapshot.of_kind(GATEWAY_API, "Gateway"):
        class_name = str((gateway.body.get("spec") or {}).get("gatewayClassName", ""))
        if not _heddle_class(snapshot, class_name):
            continue
        name = f"{gateway.name}-{class_name}"
        found.append(GatewayWorkload(
            name, gateway.namespace,
            ((GATEWAY_NAME_LABEL, gateway.name), ("istio.io/gateway-name", gateway.name)),
            name, f"Gateway {gateway.namespace}/{gateway.name}"))
    return found
