"""The Gateway API conformance manifests (../shared/corpus/gateway-api/conformance) through
Heddle's conversion to Istio resources: every scenario converts, the derived Istio
resources are valid, and each route's and gateway's status carries the conditions the
upstream conformance tests (conformance/tests/*.go at gateway-api's COMMIT) wait for."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from heddle.api.loader import load_text
from heddle.api.resource import Resource
from heddle.model.snapshot import MeshSnapshot
from tests.compat.test_shared_corpus import CONFORMANCE_PLACEHOLDERS
from tests.conftest import CORPUS

INFRA = "gateway-conformance-infra"
MESH = "gateway-conformance-mesh"
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")


def _substituted(text: str) -> str:
    for old, new in CONFORMANCE_PLACEHOLDERS.items():
        text = text.replace(old, new)
    return text


def _certificate_secret(namespace: str, name: str) -> str:
    """What the suite's MustCreateSelfSignedCertSecret makes before the tests run."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem_cert = cert.public_bytes(serialization.Encoding.PEM)
    pem_key = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
            f"type: kubernetes.io/tls\ndata:\n  tls.crt: {base64.b64encode(pem_cert).decode()}\n"
            f"  tls.key: {base64.b64encode(pem_key).decode()}\n")


# The Services of the suite's mesh manifests (conformance/mesh/manifests.yaml upstream).
MESH_SERVICES = "".join(f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {MESH}}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: 80, appProtocol: http}}
  - {{name: http-alt, port: 8080, appProtocol: http}}
""" for name in ("echo", "echo-v1", "echo-v2"))


@pytest.fixture(scope="module")
def base() -> list[Resource[Any]]:
    text = _substituted((CORPUS / "gateway-api/conformance/base/manifests.yaml").read_text())
    secrets = "---\n".join(_certificate_secret(ns, name) for ns, name in (
        (INFRA, "tls-validity-checks-certificate"), (INFRA, "tls-checks-certificate"),
        (INFRA, "tls-passthrough-checks-certificate"),
        (INFRA, "tls-terminate-checks-certificate"),
        ("gateway-conformance-web-backend", "certificate")))
    result = load_text(f"{text}\n---\n{secrets}{MESH_SERVICES}", "base.yaml")
    assert [str(d) for d in result.errors] == []
    return result.resources


def _scenarios(corpus: Path, pattern: str) -> list[Path]:
    return sorted((corpus / "gateway-api/conformance/tests").glob(pattern))


def _convert(base: list[Resource[Any]], path: Path) -> MeshSnapshot:
    result = load_text(_substituted(path.read_text()), path.name)
    assert [str(d) for d in result.errors] == []
    return MeshSnapshot.build(1, base + result.resources)


def _parents(snapshot: MeshSnapshot, kind: str, namespace: str, name: str
             ) -> dict[str, dict[str, tuple[str, str]]]:
    """Parent name -> condition type -> (status, reason)."""
    route = snapshot.get("gateway.networking.k8s.io", kind, namespace, name)
    assert route is not None
    status = snapshot.gateway_api.status_json(route.key)
    assert status is not None
    return {p["parentRef"]["name"]: {c["type"]: (c["status"], c["reason"])
                                     for c in p["conditions"]}
            for p in status["parents"]}


def _listeners(snapshot: MeshSnapshot, name: str) -> dict[str, dict[str, Any]]:
    gateway = snapshot.get("gateway.networking.k8s.io", "Gateway", INFRA, name)
    assert gateway is not None
    status = snapshot.gateway_api.status_json(gateway.key)
    assert status is not None
    return {item["name"]: {"attachedRoutes": item["attachedRoutes"],
                           "supportedKinds": [k["kind"] for k in item["supportedKinds"]],
                           **{c["type"]: (c["status"], c["reason"]) for c in item["conditions"]}}
            for item in status["listeners"]}


def _gateway_conditions(snapshot: MeshSnapshot, name: str) -> dict[str, tuple[str, str]]:
    gateway = snapshot.get("gateway.networking.k8s.io", "Gateway", INFRA, name)
    assert gateway is not None
    status = snapshot.gateway_api.status_json(gateway.key)
    assert status is not None
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


ACCEPTED = ("True", "Accepted")
RESOLVED = ("True", "ResolvedRefs")

# Route scenarios whose .go test expects something other than "every route Accepted and
# ResolvedRefs on every parent" (GatewayAndHTTPRoutesMustBeAccepted): (kind, namespace,
# route, parent) -> {condition type: (status, reason)}.
ROUTE_EXPECTATIONS: dict[str, dict[tuple[str, str, str, str], dict[str, tuple[str, str]]]] = {
    "httproute-invalid-backendref-unknown-kind.yaml": {
        ("HTTPRoute", INFRA, "invalid-backend-ref-unknown-kind", "same-namespace"):
            {"Accepted": ACCEPTED, "ResolvedRefs": ("False", "InvalidKind")}},
    "httproute-invalid-cross-namespace-backend-ref.yaml": {
        ("HTTPRoute", INFRA, "invalid-cross-namespace-backend-ref", "same-namespace"):
            {"Accepted": ACCEPTED, "ResolvedRefs": ("False", "RefNotPermitted")}},
    "httproute-invalid-cross-namespace-parent-ref.yaml": {
        ("HTTPRoute", "gateway-conformance-web-backend", "invalid-cross-namespace-parent-ref",
         "same-namespace"):
            {"Accepted": ("False", "NotAllowedByListeners"), "ResolvedRefs": RESOLVED}},
    "httproute-invalid-nonexistent-backendref.yaml": {
        ("HTTPRoute", INFRA, "invalid-nonexistent-backend-ref", "same-namespace"):
            {"Accepted": ACCEPTED, "ResolvedRefs": ("False", "BackendNotFound")}},
    "httproute-invalid-parentref-not-matching-listener-port.yaml": {
        ("HTTPRoute", INFRA, "httproute-listener-not-matching-route-port", "same-namespace"):
            {"Accepted": ("False", "NoMatchingParent"), "ResolvedRefs": RESOLVED}},
    "httproute-invalid-parentref-not-matching-section-name.yaml": {
        ("HTTPRoute", INFRA, "httproute-listener-not-matching-section-name",
         "same-namespace"): {"Accepted": ("False", "NoMatchingParent")}},
    "httproute-invalid-parentref-section-name-not-matching-port.yaml": {
        ("HTTPRoute", INFRA, "httproute-listener-section-name-not-matching-port",
         "gateway-with-one-not-matching-port-and-section-name-route"):
            {"Accepted": ("False", "NoMatchingParent")}},
    "httproute-invalid-reference-grant.yaml": {
        ("HTTPRoute", INFRA, "reference-grant", "same-namespace"):
            {"Accepted": ACCEPTED, "ResolvedRefs": ("False", "RefNotPermitted")}},
    "httproute-partially-invalid-via-invalid-reference-grant.yaml": {
        ("HTTPRoute", INFRA, "invalid-reference-grant", "same-namespace"):
            {"Accepted": ACCEPTED, "ResolvedRefs": ("False", "RefNotPermitted")}},
    "httproute-disallowed-kind.yaml": {
        ("HTTPRoute", INFRA, "disallowed-kind", "tlsroutes-only"):
            {"Accepted": ("False", "NotAllowedByListeners"), "ResolvedRefs": RESOLVED}},
    "httproute-hostname-intersection.yaml": {
        ("HTTPRoute", INFRA, name, "httproute-hostname-intersection"):
            {"Accepted": ACCEPTED, "ResolvedRefs": RESOLVED}
        for name in ("specific-host-matches-listener-specific-host",
                     "specific-host-matches-listener-wildcard-host",
                     "wildcard-host-matches-listener-specific-host",
                     "wildcard-host-matches-listener-wildcard-host")},
    # Backend-level RequestRedirect and URLRewrite are extended features that Istio does
    # not implement either (a VirtualService destination has neither): the route says so.
    "httproute-backend-request-redirect.yaml": {
        ("HTTPRoute", INFRA, "backend-request-redirect", "same-namespace"):
            {"Accepted": ("False", "UnsupportedValue")}},
    "httproute-backend-url-rewrite.yaml": {
        ("HTTPRoute", INFRA, "backend-url-rewrite", "same-namespace"):
            {"Accepted": ("False", "UnsupportedValue")}},
    "tcproute-invalid-backendref-nonexistent.yaml": {
        ("TCPRoute", INFRA, "tcp-route-invalid-backend-ref-nonexistent",
         "tcp-gateway-invalid-backend"): {"ResolvedRefs": ("False", "BackendNotFound")}},
    "tcproute-invalid-cross-namespace-backend-ref.yaml": {
        ("TCPRoute", INFRA, "tcp-invalid-cross-namespace-backend-ref",
         "tcp-invalid-cross-namespace-backend-ref-gateway"):
            {"ResolvedRefs": ("False", "RefNotPermitted")}},
    "tcproute-invalid-non-tcp-listener.yaml": {
        ("TCPRoute", INFRA, "tcp-route", "tcp-mixed-protocol-gateway"):
            {"Accepted": ("False", "NotAllowedByListeners")}},
    "tlsroute-invalid-backendref-nonexistent.yaml": {
        ("TLSRoute", INFRA, "invalid-backend-ref-nonexistent",
         "gateway-tlsroute-invalid-backend-ref-nonexistent"):
            {"Accepted": ACCEPTED, "ResolvedRefs": ("False", "BackendNotFound")}},
    "tlsroute-invalid-backendref-unknown-kind.yaml": {
        ("TLSRoute", INFRA, "invalid-backend-ref-unknown-kind",
         "gateway-tlsroute-invalid-backend-ref-unknown-kind"):
            {"Accepted": ACCEPTED, "ResolvedRefs": ("False", "InvalidKind")}},
    "tlsroute-invalid-no-matching-listener-hostname.yaml": {
        ("TLSRoute", INFRA, "tlsroute-hostname-mismatch-1", "gateway-tls-exact-hostname"):
            {"Accepted": ("False", "NoMatchingListenerHostname")},
        ("TLSRoute", INFRA, "tlsroute-hostname-mismatch-2", "gateway-tls-wildcard-hostname"):
            {"Accepted": ("False", "NoMatchingListenerHostname")}},
    "tlsroute-invalid-no-matching-listener.yaml": {
        ("TLSRoute", INFRA, "tlsroute-no-matching-section-name",
         "gateway-tlsroute-tls-passthrough-only"): {"Accepted": ("False", "NoMatchingParent")},
        ("TLSRoute", INFRA, "tlsroute-not-allowed-protocol-http", "gateway-tlsroute-http-only"):
            {"Accepted": ("False", "NotAllowedByListeners")}},
    "tlsroute-invalid-reference-grant.yaml": {
        ("TLSRoute", INFRA, "gateway-conformance-infra-test", "gateway-tlsroute-referencegrant"):
            {"Accepted": ACCEPTED, "ResolvedRefs": ("False", "RefNotPermitted")}},
}


@pytest.mark.parametrize("pattern", ["httproute-*.yaml", "grpcroute-*.yaml", "tcproute-*.yaml",
                                     "tlsroute-*.yaml", "mesh/*.yaml"])
def test_every_route_scenario_converts_to_valid_istio_resources_with_expected_status(
        corpus: Path, base: list[Resource[Any]], pattern: str) -> None:
    scenarios = _scenarios(corpus, pattern)
    assert scenarios
    for path in scenarios:
        snapshot = _convert(base, path)
        assert [str(d) for d in snapshot.gateway_api.diagnostics] == [], path.name
        routes = [r for r in snapshot.resources()
                  if r.key.group == "gateway.networking.k8s.io" and r.kind in ROUTE_KINDS
                  and r.source is not None and r.source.file == path.name]
        expected = ROUTE_EXPECTATIONS.get(path.name)
        if expected is None:  # GatewayAndHTTPRoutesMustBeAccepted, for every route
            for route in routes:
                parents = _parents(snapshot, route.kind, route.namespace, route.name)
                assert parents, (path.name, route.name)
                for parent, conditions in parents.items():
                    assert conditions == {"Accepted": ACCEPTED, "ResolvedRefs": RESOLVED}, (
                        path.name, route.name, parent)
            continue
        for (kind, namespace, name, parent), conditions in expected.items():
            found = _parents(snapshot, kind, namespace, name)[parent]
            assert {t: found[t] for t in conditions} == conditions, (path.name, name)


def test_every_accepted_http_route_reaches_a_virtual_service_of_its_gateway(
        corpus: Path, base: list[Resource[Any]]) -> None:
    converted = 0
    for path in _scenarios(corpus, "httproute-*.yaml"):
        snapshot = _convert(base, path)
        derived = [r for r in snapshot.of_kind("networking.istio.io", "VirtualService")
                   if r.source is not None and r.source.file == path.name]
        parents = ",".join(r.metadata.annotations["internal.istio.io/parents"]
                           for r in derived)
        for route in snapshot.of_kind("gateway.networking.k8s.io", "HTTPRoute"):
            if route.source is None or route.source.file != path.name:
                continue
            accepted = any(c["Accepted"] == ACCEPTED for c in _parents(
                snapshot, "HTTPRoute", route.namespace, route.name).values())
            assert (f"HTTPRoute/{route.name}.{route.namespace}" in parents) == accepted, (
                path.name, route.name)
            converted += accepted
    assert converted >= 70


def test_gateway_with_attached_routes_counts_them_per_listener(
        corpus: Path, base: list[Resource[Any]]) -> None:
    snapshot = _convert(base, corpus / "gateway-api/conformance/tests"
                        / "gateway-with-attached-routes.yaml")
    one = _listeners(snapshot, "gateway-with-one-attached-route")["http"]
    assert (one["attachedRoutes"], one["Accepted"], one["ResolvedRefs"]) == (
        1, ("True", "Accepted"), ("True", "ResolvedRefs"))
    assert one["supportedKinds"] == ["HTTPRoute"]
    assert _listeners(snapshot, "gateway-with-two-attached-routes")["http"][
        "attachedRoutes"] == 2
    assert _parents(snapshot, "HTTPRoute", INFRA, "http-route-not-accepted")[
        "gateway-with-two-attached-routes"]["Accepted"] == (
            "False", "NoMatchingListenerHostname")
    unresolved = _listeners(snapshot,
                            "unresolved-gateway-with-one-attached-unresolved-route")["tls"]
    assert unresolved["attachedRoutes"] == 1
    assert unresolved["Programmed"][0] == unresolved["ResolvedRefs"][0] == "False"


def test_listener_of_an_unsupported_protocol_is_not_accepted(
        corpus: Path, base: list[Resource[Any]]) -> None:
    snapshot = _convert(base, corpus / "gateway-api/conformance/tests"
                        / "gateway-invalid-listeners-unsupported-protocol.yaml")
    assert _gateway_conditions(snapshot, "gateway-only-unsupported-protocols")["Accepted"] == (
        "False", "ListenersNotValid")
    assert _gateway_conditions(snapshot, "gateway-supported-and-unsupported-protocols")[
        "Accepted"] == ("True", "ListenersNotValid")
    listeners = _listeners(snapshot, "gateway-supported-and-unsupported-protocols")
    assert listeners["http"]["Accepted"] == ("True", "Accepted")
    assert listeners["invalid"]["Accepted"] == ("False", "UnsupportedProtocol")


@pytest.mark.parametrize(("scenario", "gateway", "listener", "resolved"), [
    ("gateway-invalid-route-kind.yaml", "gateway-only-invalid-route-kind", "http",
     ("False", "InvalidRouteKinds")),
    ("gateway-invalid-route-kind.yaml", "gateway-supported-and-invalid-route-kind", "http",
     ("False", "InvalidRouteKinds")),
    ("gateway-secret-missing-reference-grant.yaml", "gateway-secret-missing-reference-grant",
     "https", ("False", "RefNotPermitted")),
    ("gateway-secret-invalid-reference-grant.yaml", "gateway-secret-invalid-reference-grant",
     "https", ("False", "RefNotPermitted")),
    ("gateway-secret-reference-grant-specific.yaml", "gateway-secret-reference-grant-specific",
     "https", ("True", "ResolvedRefs")),
    ("gateway-secret-reference-grant-all-in-namespace.yaml",
     "gateway-secret-reference-grant-all-in-namespace", "https", ("True", "ResolvedRefs")),
    ("gateway-invalid-tls-configuration.yaml", "gateway-certificate-nonexistent-secret",
     "https", ("False", "InvalidCertificateRef")),
    ("gateway-invalid-tls-configuration.yaml", "gateway-certificate-unsupported-group",
     "https", ("False", "InvalidCertificateRef")),
    ("gateway-invalid-tls-configuration.yaml", "gateway-certificate-unsupported-kind",
     "https", ("False", "InvalidCertificateRef")),
    ("gateway-invalid-tls-configuration.yaml", "gateway-certificate-malformed-secret",
     "https", ("False", "InvalidCertificateRef")),
])
def test_listener_references_resolve_as_the_conformance_tests_expect(
        corpus: Path, base: list[Resource[Any]], scenario: str, gateway: str, listener: str,
        resolved: tuple[str, str]) -> None:
    snapshot = _convert(base, corpus / "gateway-api/conformance/tests" / scenario)
    found = _listeners(snapshot, gateway)[listener]
    assert found["ResolvedRefs"] == resolved
    assert found["attachedRoutes"] == 0
    assert found["Programmed"][0] == resolved[0]
