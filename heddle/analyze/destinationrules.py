"""DestinationRule analyzers: a host no service declares (IST0174), a subset that selects no
workload (IST0173), and TLS origination that does not verify the server (IST0128/0129)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import ISTIO, AnalysisInput, selector_text, selects, spec
from heddle.analyze.messages import (
    DR_SUBSET_NOT_SELECT_PODS,
    NO_SERVER_CERT_VERIFICATION_DESTINATION,
    NO_SERVER_CERT_VERIFICATION_PORT,
    UNKNOWN_DR_HOST,
    Message,
)

DR = (ISTIO, "DestinationRule")
_VERIFYING_MODES = ("SIMPLE", "MUTUAL")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _check_subsets(world: AnalysisInput) -> Iterator[Message]:
    hosts = world.service_hosts()
    workloads = world.workloads()
    for dr in world.of_kind(*DR):
        body = spec(dr)
        host = str(body.get("host") or "")
        entry = hosts.find(dr.namespace, [str(e) for e in body.get("exportTo") or []], host)
        if entry is None:
            yield report(UNKNOWN_DR_HOST, dr,
                         f"the host {host!r} is not a known service or ServiceEntry host",
                         "correct spec.host, or declare the host with a Service or "
                         "ServiceEntry", ("spec", "host"))
            continue
        for i, subset in enumerate(body.get("subsets") or []):
            subset = _dict(subset)
            selector = {**entry.selector,
                        **{str(k): str(v) for k, v in _dict(subset.get("labels")).items()}}
            if not any(selects(selector, w.labels) for w in workloads):
                name = str(subset.get("name") or "")
                yield report(DR_SUBSET_NOT_SELECT_PODS, dr,
                             f"subset {name!r} selects no workload (labels "
                             f"{selector_text(selector)!r})",
                             "correct the subset's labels, or run a workload that has them",
                             ("spec", "subsets", i))


def _unverified(tls: Mapping[str, Any], has_selector: bool) -> bool:
    if str(tls.get("mode") or "") not in _VERIFYING_MODES or tls.get("caCertificates"):
        return False
    return not (tls.get("credentialName") and has_selector)


def _check_ca_certificates(world: AnalysisInput) -> Iterator[Message]:
    for dr in world.of_kind(*DR):
        body = spec(dr)
        has_selector = body.get("workloadSelector") is not None
        policy = _dict(body.get("trafficPolicy"))
        tls = _dict(policy.get("tls"))
        host = body.get("host")
        fix = ("set caCertificates (or credentialName with a workloadSelector) so the server's "
               "certificate is verified")
        if _unverified(tls, has_selector):
            yield report(NO_SERVER_CERT_VERIFICATION_DESTINATION, dr,
                         f"DestinationRule {dr.namespace}/{dr.name} uses TLS mode "
                         f"{tls.get('mode')} for host {host!r} without caCertificates: the "
                         "server's certificate is not verified", fix,
                         ("spec", "trafficPolicy", "tls", "mode"))
        for i, settings in enumerate(policy.get("portLevelSettings") or []):
            settings = _dict(settings)
            port_tls = _dict(settings.get("tls"))
            if _unverified(port_tls, has_selector):
                port = _dict(settings.get("port")).get("number")
                yield report(NO_SERVER_CERT_VERIFICATION_PORT, dr,
                             "TLS mode "
                             f"{port_tls.get('mode')} for host {host!r} port {port} without "
                             "caCertificates: the server's certificate is not verified", fix,
                             ("spec", "trafficPolicy", "portLevelSettings", i, "tls", "mode"))


ANALYZERS = (
    Analyzer("destinationrule.SubsetSelectPodAnalyzer",
             "Checks that DestinationRule hosts are known and every subset selects a workload",
             frozenset({DR, ("", "Pod"), ("", "Service"), (ISTIO, "ServiceEntry"),
                        ("", "Node"), (ISTIO, "WorkloadEntry"), (ISTIO, "WorkloadGroup")}),
             _check_subsets),
    Analyzer("destinationrule.CaCertificateAnalyzer",
             "Checks that TLS origination (SIMPLE/MUTUAL) verifies the server's certificate",
             frozenset({DR}), _check_ca_certificates),
)
