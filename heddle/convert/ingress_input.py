"""Kubernetes `Ingress` resources (networking.k8s.io/v1 and v1beta1) read from YAML documents
into frozen values that remember where each part was written."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from heddle.api.diagnostics import ResourceRef, SourcePosition
from heddle.api.yaml_documents import PathKey, YamlDocument
from heddle.convert.findings import Finding, Verdict

INGRESS_API_VERSIONS = ("networking.k8s.io/v1", "networking.k8s.io/v1beta1",
                        "extensions/v1beta1")
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
# A host as Kubernetes validates an Ingress's (and Gateway API a hostname).
HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Backend:
    service: str
    port: int


@dataclass(frozen=True)
class IngressPath:
    host: str  # "" for a rule without a host: any host
    path: str
    path_type: str  # Exact, Prefix or ImplementationSpecific
    backend: Backend
    position: SourcePosition


@dataclass(frozen=True)
class TlsEntry:
    hosts: tuple[str, ...]
    secret: str
    field: str
    position: SourcePosition


@dataclass(frozen=True)
class Annotation:
    key: str
    value: str
    position: SourcePosition

    @property
    def subject(self) -> str:
        return f'{self.key}="{self.value}"'


@dataclass(frozen=True)
class Ingress:
    namespace: str  # "" when the document names none
    name: str
    ingress_class: str | None
    annotations: tuple[Annotation, ...]
    paths: tuple[IngressPath, ...]
    hosts: tuple[str, ...]  # the hosts of its rules, in order
    tls: tuple[TlsEntry, ...]
    default_backend: Backend | None
    position: SourcePosition

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef("Ingress", self.namespace, self.name)

    def annotation(self, key: str) -> Annotation | None:
        return next((a for a in self.annotations if a.key == key), None)


@dataclass(frozen=True)
class IngressInput:
    ingresses: tuple[Ingress, ...]
    findings: tuple[Finding, ...]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# Named Service ports, from the Services among the inputs: (namespace, service, port name).
ServicePorts = dict[tuple[str, str, str], int]


def _service_ports(documents: Iterable[YamlDocument]) -> ServicePorts:
    ports: ServicePorts = {}
    for doc in documents:
        body = _mapping(doc.body)
        if body.get("kind") != "Service" or body.get("apiVersion") != "v1":
            continue
        meta = _mapping(body.get("metadata"))
        for port in _sequence(_mapping(body.get("spec")).get("ports")):
            port = _mapping(port)
            if isinstance(port.get("name"), str) and isinstance(port.get("port"), int):
                ports[(_text(meta.get("namespace")), _text(meta.get("name")),
                       port["name"])] = port["port"]
    return ports


class _Reader:
    def __init__(self, doc: YamlDocument, ports: ServicePorts) -> None:
        self.doc = doc
        self.ports = ports
        self.body = _mapping(doc.body)
        meta = _mapping(self.body.get("metadata"))
        self.namespace = _text(meta.get("namespace"))
        self.ref = ResourceRef("Ingress", self.namespace, _text(meta.get("name")))
        self.findings: list[Finding] = []

    def at(self, *path: str | int) -> SourcePosition:
        key: PathKey = path
        return self.doc.position(key)

    def lost(self, path: tuple[str | int, ...], subject: str, reason: str) -> None:
        self.findings.append(Finding(self.at(*path), self.ref, subject,
                                     Verdict.NOT_CONVERTED, reason))

    def backend(self, value: Any, path: tuple[str | int, ...]) -> Backend | None:
        """A v1 `service: {name, port: {number|name}}` or a v1beta1 `serviceName`,
        `servicePort`; a named port is looked up among the input's Services."""
        value = _mapping(value)
        field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
        field = field.replace(".[", "[")
        if "resource" in value:
            self.lost(path, field, "a resource backend has no Gateway API equivalent "
                      "(backendRefs name Services); the path is left out")
            return None
        if "service" in value:
            service = _mapping(value["service"])
            name, port_spec = _text(service.get("name")), _mapping(service.get("port"))
            port: Any = port_spec.get("number", port_spec.get("name"))
        else:
            name, port = _text(value.get("serviceName")), value.get("servicePort")
        if not name or port is None:
            self.lost(path, field, "the backend names no service and port; the path is left "
                      "out")
            return None
        if isinstance(port, int):
            return Backend(name, port)
        number = self.ports.get((self.namespace, name, _text(port)))
        if number is None:
            self.lost(path, field, f"service {name} port {_text(port)!r} is named, and "
                      "Gateway API backendRefs need the port number: the Service is not among "
                      "the inputs (add it with -f, or write the number); the path is left out")
            return None
        return Backend(name, number)

    def read(self) -> Ingress:
        meta = _mapping(self.body.get("metadata"))
        spec = _mapping(self.body.get("spec"))
        annotations = tuple(
            Annotation(str(key), _text(value), self.at("metadata", "annotations", str(key)))
            for key, value in _mapping(meta.get("annotations")).items())
        class_name = spec.get("ingressClassName") or next(
            (a.value for a in annotations if a.key == CLASS_ANNOTATION), None)
        paths: list[IngressPath] = []
        hosts: list[str] = []
        for i, rule in enumerate(_sequence(spec.get("rules"))):
            rule = _mapping(rule)
            host = _text(rule.get("host"))
            if host and not HOST.match(host):
                self.lost(("spec", "rules", i, "host"), f"spec.rules[{i}].host",
                          f"{host!r} is not a DNS name (a placeholder left in?), which "
                          "Kubernetes refuses; the rule is left out")
                continue
            if host not in hosts:
                hosts.append(host)
            http_paths = _sequence(_mapping(rule.get("http")).get("paths"))
            for j, item in enumerate(http_paths):
                item = _mapping(item)
                where = ("spec", "rules", i, "http", "paths", j)
                backend = self.backend(item.get("backend"), (*where, "backend"))
                if backend is None:
                    continue
                # ingress-nginx reads a missing pathType as Prefix (k8s.SetDefaultNGINXPathType)
                paths.append(IngressPath(host, _text(item.get("path")) or "/",
                                         _text(item.get("pathType")) or "Prefix", backend,
                                         self.at(*where)))
        tls: list[TlsEntry] = []
        for i, entry in enumerate(_sequence(spec.get("tls"))):
            tls_hosts = [_text(h) for h in _sequence(_mapping(entry).get("hosts"))]
            for j, host in enumerate(tls_hosts):
                if not HOST.match(host):
                    self.lost(("spec", "tls", i, "hosts", j), f"spec.tls[{i}].hosts[{j}]",
                              f"{host!r} is not a DNS name (a placeholder left in?), which "
                              "Kubernetes refuses; no HTTPS listener is made for it")
            if tls_hosts and not any(HOST.match(h) for h in tls_hosts):
                continue
            tls.append(TlsEntry(tuple(h for h in tls_hosts if HOST.match(h)),
                                _text(_mapping(entry).get("secretName")), f"spec.tls[{i}]",
                                self.at("spec", "tls", i)))
        default_key = "defaultBackend" if "defaultBackend" in spec else "backend"
        default = (self.backend(spec[default_key], ("spec", default_key))
                   if default_key in spec else None)
        return Ingress(self.namespace, self.ref.name, _text(class_name) or None, annotations,
                       tuple(paths), tuple(hosts), tuple(tls), default, self.at())


def is_ingress(doc: YamlDocument) -> bool:
    body = _mapping(doc.body)
    return body.get("kind") == "Ingress" and body.get("apiVersion") in INGRESS_API_VERSIONS


def read_ingresses(documents: Iterable[YamlDocument]) -> IngressInput:
    """Every Ingress of `documents`, in order; a part that cannot be read is a finding."""
    docs = list(documents)
    ports = _service_ports(docs)
    ingresses: list[Ingress] = []
    findings: list[Finding] = []
    for doc in docs:
        if is_ingress(doc):
            reader = _Reader(doc, ports)
            ingresses.append(reader.read())
            findings += reader.findings
    return IngressInput(tuple(ingresses), tuple(findings))
