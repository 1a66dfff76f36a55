"""Gateway analyzers: a selector no gateway pod has (IST0101), servers on ports the gateway's
Service does not expose (IST0162), two Gateways claiming one host on one port of the same
workloads (IST0145), and credentialName secrets that are missing or hold no valid
certificate (IST0101, IST0161)."""

from __future__ import annotations

import base64
import binascii
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import (
    ISTIO,
    AnalysisInput,
    WorkloadInfo,
    selector_text,
    selects,
    spec,
)
from heddle.analyze.messages import (
    CONFLICTING_GATEWAYS,
    GATEWAY_DUPLICATE_CERTIFICATE,
    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
    INVALID_GATEWAY_CREDENTIAL,
    REFERENCED_RESOURCE_NOT_FOUND,
    Message,
)
from heddle.api.resource import Resource

GATEWAY = (ISTIO, "Gateway")
POD = ("", "Pod")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _selector(gateway: Resource[Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(spec(gateway).get("selector")).items()}


def _pods(world: AnalysisInput) -> list[WorkloadInfo]:
    return [w for w in world.workloads() if w.kind == "Pod"]


def _no_pod(gateway: Resource[Any], selector: Mapping[str, str]) -> Message:
    return report(REFERENCED_RESOURCE_NOT_FOUND, gateway,
                  f"referenced selector not found: \"{selector_text(selector)}\"",
                  "correct spec.selector to the labels of the gateway's pods (the ingress "
                  "gateway's are `istio: ingressgateway`)", ("spec", "selector"))


def _service_ports(world: AnalysisInput, pod: WorkloadInfo) -> tuple[set[int], set[int]]:
    """The target ports and the ports of the TCP Services that select `pod`."""
    targets: set[int] = set()
    ports: set[int] = set()
    for service in world.of_kind("", "Service"):
        body = spec(service)
        selector = {str(k): str(v) for k, v in _dict(body.get("selector")).items()}
        if service.namespace != pod.namespace or not selects(selector, pod.labels):
            continue
        for port in body.get("ports") or []:
            port = _dict(port)
            if str(port.get("protocol") or "TCP") != "TCP":
                continue
            target = port.get("targetPort")
            number = int(port.get("port") or 0)
            if isinstance(target, int) and target:
                targets.add(target)
                ports.add(number)
            else:
                targets.add(number)
    return targets, ports


def _check_ports(world: AnalysisInput) -> Iterator[Message]:
    pods = _pods(world)
    for gateway in world.of_kind(*GATEWAY):
        selector = _selector(gateway)
        chosen = [p for p in pods if selects(selector, p.labels)]
        if not chosen:
            yield _no_pod(gateway, selector)
            continue
        targets: set[int] = set()
        ports: set[int] = set()
        for pod in chosen:
            more_targets, more_ports = _service_ports(world, pod)
            targets |= more_targets
            ports |= more_ports
        for i, server in enumerate(spec(gateway).get("servers") or []):
            number = _dict(_dict(server).get("port")).get("number")
            if number is None or int(number) in targets or int(number) in ports:
                continue
            yield report(GATEWAY_PORT_NOT_DEFINED_ON_SERVICE, gateway,
                         f"port {number} is not exposed by the Service of the gateway's pods "
                         f"(selector {selector_text(selector)!r})",
                         "add the port to the gateway's Service, or use one it exposes",
                         ("spec", "servers", i, "port"))


def _check_conflicts(world: AnalysisInput) -> Iterator[Message]:
    """Two Gateways conflict when their selectors pick the same pods and a server of each,
    on the same port and bind, names the same host."""
    gateways = world.of_kind(*GATEWAY)
    pods = _pods(world)
    # (selector, port) -> gateway -> host -> bind
    servers: dict[tuple[str, int], dict[str, dict[str, str]]] = {}
    for gateway in gateways:
        text = selector_text(_selector(gateway))
        for server in spec(gateway).get("servers") or []:
            server = _dict(server)
            port = int(_dict(server.get("port")).get("number") or 0)
            bound = {str(h): str(server.get("bind") or "") for h in server.get("hosts") or []}
            servers.setdefault((text, port), {})[f"{gateway.namespace}/{gateway.name}"] = bound
    for gateway in gateways:
        selector = _selector(gateway)
        text = selector_text(selector)
        same_pods = {key for key in servers if _same_workloads(key[0], selector, pods)}
        if text and not same_pods:
            yield _no_pod(gateway, selector)
            continue
        name = f"{gateway.namespace}/{gateway.name}"
        for i, server in enumerate(spec(gateway).get("servers") or []):
            server = _dict(server)
            port = int(_dict(server.get("port")).get("number") or 0)
            bind = str(server.get("bind") or "")
            hosts = [str(h) for h in server.get("hosts") or []]
            others = sorted(
                other for key in same_pods if key[1] == port
                for other, known in servers[key].items()
                if other != name and any(known.get(h) == bind for h in hosts))
            if others:
                yield report(
                    CONFLICTING_GATEWAYS, gateway,
                    f"this Gateway and {','.join(others)} select the same workloads "
                    f"({text!r}) and both serve host(s) {','.join(hosts)} on port {port}",
                    "serve each host on a port from one Gateway only, or give the Gateways "
                    "selectors that pick different workloads", ("spec", "servers", i))


def _same_workloads(other: str, selector: Mapping[str, str],
                    pods: list[WorkloadInfo]) -> bool:
    text = selector_text(selector)
    if other == text:
        return True
    if other not in text and text not in other:
        return False
    parsed = {}
    for pair in other.split(","):
        if pair.count("=") == 1:
            key, value = pair.split("=")
            parsed[key] = value
    return any(selects(selector, p.labels) and selects(parsed, p.labels) for p in pods)


def _certificate(secret: Resource[Any]) -> bytes | None:
    """The certificate a credential Secret holds (`cert`/`key` or `tls.crt`/`tls.key`)."""
    data = _dict(secret.body.get("data"))
    for cert, key in (("cert", "key"), ("tls.crt", "tls.key")):
        if data.get(cert) and data.get(key):
            try:
                return base64.b64decode(str(data[cert]), validate=True)
            except (binascii.Error, ValueError):
                return None
    return None


def _valid_certificate(pem: bytes | None, now: datetime) -> bool:
    if pem is None:
        return False
    try:
        with warnings.catch_warnings():  # a non-positive serial number is still read
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return False
    return all(c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in certificates)


def _check_secrets(world: AnalysisInput) -> Iterator[Message]:
    pods = _pods(world)
    now = datetime.fromtimestamp(world.now, UTC)
    for gateway in world.of_kind(*GATEWAY):
        selector = _selector(gateway)
        pod = next((p for p in pods if selects(selector, p.labels)), None)
        if pod is None:
            yield _no_pod(gateway, selector)
            continue
        for i, server in enumerate(spec(gateway).get("servers") or []):
            name = str(_dict(_dict(server).get("tls")).get("credentialName") or "")
            if not name:
                continue
            namespace, _, local = name.rpartition("/")
            secret = world.get("", "Secret", namespace or pod.namespace, local)
            path = ("spec", "servers", i, "tls", "credentialName")
            if secret is None:
                yield report(REFERENCED_RESOURCE_NOT_FOUND, gateway,
                             f"referenced credentialName not found: \"{name}\"",
                             f"create Secret {name!r} in the gateway pods' namespace "
                             f"{pod.namespace!r}, or correct credentialName", path)
            elif not _valid_certificate(_certificate(secret), now):
                yield report(INVALID_GATEWAY_CREDENTIAL, gateway,
                             f"Secret {secret.namespace}/{secret.name} holds no valid "
                             "certificate (tls.crt/tls.key or cert/key, PEM, in date)",
                             "put a current PEM certificate and its key in the Secret", path)


def _same_certificate(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.get("credentialName") or b.get("credentialName"):
        return bool(a.get("credentialName")) and a.get("credentialName") == b.get(
            "credentialName")
    return bool(a.get("serverCertificate") and a.get("privateKey")
                and a.get("serverCertificate") == b.get("serverCertificate")
                and a.get("privateKey") == b.get("privateKey"))


def _selector_within(mine: Mapping[str, str], theirs: Mapping[str, str]) -> bool:
    """Every label of `mine` is in `theirs` with the same value."""
    return all(theirs.get(k) == v for k, v in mine.items())


def _check_certificates(world: AnalysisInput) -> Iterator[Message]:
    """One certificate on servers of two Gateways of the same workloads: an HTTP/2 client
    that reuses its connection for the other's hosts gets 404s."""
    gateways = world.of_kind(*GATEWAY)
    for gateway in gateways:
        selector = _selector(gateway)
        for other in gateways:
            if other.key == gateway.key or not _selector_within(selector, _selector(other)):
                continue
            for i, mine in enumerate(spec(gateway).get("servers") or []):
                tls = _dict(_dict(mine).get("tls"))
                theirs = [_dict(_dict(s).get("tls")) for s in spec(other).get("servers") or []]
                if tls and any(t and _same_certificate(tls, t) for t in theirs):
                    yield report(GATEWAY_DUPLICATE_CERTIFICATE, gateway,
                                 f"the Gateways {gateway.namespace}/{gateway.name} and "
                                 f"{other.namespace}/{other.name} serve the same certificate: "
                                 "HTTP/2 clients that reuse a connection across their hosts "
                                 "get 404s", "serve the hosts from one Gateway, or give each "
                                 "Gateway its own certificate", ("spec", "servers", i, "tls"))


ANALYZERS = (
    Analyzer("gateway.IngressGatewayPortAnalyzer",
             "Checks a gateway's ports against the gateway's Kubernetes service ports",
             frozenset({GATEWAY, POD, ("", "Service")}), _check_ports),
    Analyzer("gateway.ConflictingGatewayAnalyzer",
             "Checks a gateway's selector, port number and hosts",
             frozenset({GATEWAY, POD}), _check_conflicts),
    Analyzer("gateway.SecretAnalyzer",
             "Checks a gateway's referenced secrets for correctness",
             frozenset({GATEWAY, POD, ("", "Secret")}), _check_secrets),
    Analyzer("gateway.CertificateAnalyzer", "Checks a gateway certificate",
             frozenset({GATEWAY}), _check_certificates),
)
