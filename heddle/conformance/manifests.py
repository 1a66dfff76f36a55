"""The conformance manifests as a local mesh: pure, from the upstream YAML to Heddle's.

Kubernetes runs the suite's backends as Deployments of the `echo-basic` image (GAMMA's of
`echo-advanced`) behind v1
Services; here each replica is a `WorkloadEntry` (its pod's labels, a loopback pod IP of the
runner's /24) whose `heddle.dev/command` runs `heddle.conformance.echo` with the env the
upstream pod has (POD_NAME, NAMESPACE, SERVICE_NAME) and the Services' target ports to listen
on (a pod whose container sets GRPC_ECHO_SERVER runs `heddle.conformance.grpcecho` instead,
as echo-basic then serves gRPC). Services, Gateways, routes, ReferenceGrants and Secrets are
kept as written, `{GATEWAY_CLASS_NAME}` becomes the runner's class, and Deployments of other
images (CoreDNS, for UDPRoute) are left out. The default ingress gateway is turned off: the
suite deploys only its own Gateways.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

# echo-basic backs the gateway scenarios, echo-advanced the GAMMA ones' pods (both
# server and, with a sidecar, the client the requests are sent from).
ECHO_IMAGES = ("gateway-api/conformance/echo-basic", "gateway-api/conformance/echo-advanced")
ECHO_MODULE = "heddle.conformance.echo"
GRPC_ECHO_MODULE = "heddle.conformance.grpcecho"
NO_INGRESS = {
    "apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
    "metadata": {"name": "conformance", "namespace": "istio-system"},
    "spec": {"components": {"ingressGateways": [
        {"name": "istio-ingressgateway", "enabled": False}]}},
}


@dataclass
class Pods:
    """Hands out pod IPs in one /24 (`127.A.B.`), from .1 up; gateways take theirs from .250
    down (heddle up's rule), so at most 200 pods."""

    subnet: str
    taken: dict[str, str] = field(default_factory=dict)  # pod key -> address

    def address(self, key: str) -> str:
        if key not in self.taken:
            if len(self.taken) >= 200:
                raise ValueError(f"more than 200 pods in {self.subnet}0/24")
            self.taken[key] = f"{self.subnet}{len(self.taken) + 1}"
        return self.taken[key]


def describe(doc: Mapping[str, Any]) -> str:
    """`Kind ns/name`, as scenarios name a resource."""
    return f"{doc.get('kind')} {_namespace(doc)}/{(doc.get('metadata') or {}).get('name')}"


def _documents(text: str, class_name: str) -> list[dict[str, Any]]:
    text = text.replace("{GATEWAY_CLASS_NAME}", class_name)
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def _selects(service: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _namespace(doc: Mapping[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("namespace") or "default")


def _target_ports(services: Iterable[Mapping[str, Any]]) -> list[int]:
    ports = set()
    for service in services:
        for port in (service.get("spec") or {}).get("ports") or []:
            if str(port.get("protocol", "TCP")) != "TCP":
                continue
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, int):
                ports.add(target)
    return sorted(ports) or [3000]


def _echo_image(deployment: Mapping[str, Any]) -> bool:
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return any(image in str(c.get("image", "")) for c in pod.get("containers") or []
               for image in ECHO_IMAGES)


def _grpc_echo(deployment: Mapping[str, Any]) -> bool:
    """echo-basic serves gRPC when GRPC_ECHO_SERVER is set (to anything)."""
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return any(str(e.get("name")) == "GRPC_ECHO_SERVER" and ("value" in e or "valueFrom" in e)
               for c in pod.get("containers") or [] for e in c.get("env") or [])


def echo_command(python: str, env: Mapping[str, str], module: str = ECHO_MODULE) -> str:
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return f"{assignments} {shlex.quote(python)} -m {module}"


def workload_entries(deployment: Mapping[str, Any], services: Sequence[Mapping[str, Any]],
                     pods: Pods, python: str, max_replicas: int) -> list[dict[str, Any]]:
    """The WorkloadEntries standing for a Deployment's pods: `NAME-I` (the upstream checks a
    pod's name by the Deployment's as its prefix)."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    template = spec.get("template") or {}
    labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels")
                                         or {}).items()}
    namespace, name = _namespace(deployment), str(meta.get("name"))
    mine = [s for s in services if _namespace(s) == namespace and _selects(s, labels)]
    pod_spec = template.get("spec") or {}
    account = str(pod_spec.get("serviceAccountName") or "default")
    replicas = max(1, min(int(spec.get("replicas", 1)), max_replicas))
    module = GRPC_ECHO_MODULE if _grpc_echo(deployment) else ECHO_MODULE
    entries = []
    for i in range(replicas):
        pod = f"{name}-{i}"
        env = {"POD_NAME": pod, "NAMESPACE": namespace,
               "SERVICE_NAME": ",".join(str((s.get("metadata") or {}).get("name"))
                                        for s in mine),
               "ECHO_PORTS": ",".join(map(str, _target_ports(mine)))}
        entries.append({
            "apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
            "metadata": {"name": pod, "namespace": namespace,
                         "annotations": {"heddle.dev/command": echo_command(python, env,
                                                                            module)}},
            "spec": {"address": pods.address(f"{namespace}/{pod}"), "labels": labels,
                     "serviceAccount": account},
        })
    return entries


@dataclass(frozen=True)
class Converted:
    documents: list[dict[str, Any]]
    left_out: list[str]  # "Kind ns/name: why", for the runner's log

    def text(self) -> str:
        return yaml.safe_dump_all(self.documents, sort_keys=False)


def convert(text: str, pods: Pods, python: str, *, class_name: str = "heddle",
            max_replicas: int = 1, extra: Iterable[dict[str, Any]] = ()) -> Converted:
    """Upstream manifests (one file's text) as the documents of a Heddle mesh directory."""
    docs = _documents(text, class_name)
    services = [d for d in docs if d.get("kind") == "Service" and d.get("apiVersion") == "v1"]
    out: list[dict[str, Any]] = []
    left_out: list[str] = []
    for doc in docs:
        kind = str(doc.get("kind"))
        where = describe(doc)
        if kind == "Deployment":
            if _echo_image(doc):
                out += workload_entries(doc, services, pods, python, max_replicas)
            else:
                left_out.append(f"{where}: not an echo image")
        elif kind == "Service" and all(
                str(p.get("protocol", "TCP")) != "TCP"
                for p in (doc.get("spec") or {}).get("ports") or [{}]):
            left_out.append(f"{where}: no TCP port (a UDP backend, not run here)")
        elif kind == "ConfigMap":
            left_out.append(f"{where}: configuration of a backend not run here")
        else:
            out.append(doc)
    return Converted(out + list(extra), left_out)
