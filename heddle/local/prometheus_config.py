"""What the Prometheus add-on scrapes and how: the configuration of Istio's Prometheus add-on
(samples/addons/prometheus.yaml) for a local mesh, and its targets as Kubernetes would
describe the pods.

There is no Kubernetes here, so the pods come from files (file_sd) whose targets carry the
labels Kubernetes' pod discovery would give them (`__meta_kubernetes_pod_*`, the namespace,
the pod's labels and `prometheus.io/*` annotations): the add-on's `relabel_configs` then
apply unchanged, and every series gets the labels a Kubernetes user's dashboards and alerts
expect (`namespace`, `pod`, `app`, `version`, ...). Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from heddle.model.scrape import SCRAPE_ANNOTATIONS

# Here, not beside the process, so that `heddle up`'s flags need not load asyncio.
DEFAULT_PORT = 9090
DEFAULT_SCRAPE_INTERVAL = 15.0  # Istio's add-on's

TARGETS_FILE = "pods.json"
CONTROL_PLANE_NAMESPACE = "istio-system"
CONTROL_PLANE_POD = "istiod"
# istiod's Deployment labels its pods so; the pilot dashboard selects app="istiod".
CONTROL_PLANE_LABELS = {"app": "istiod", "istio": "pilot", "istio.io/rev": "default"}


@dataclass(frozen=True)
class Pod:
    """One scrape target, described as Kubernetes' pod discovery would describe the pod."""

    namespace: str
    name: str
    ip: str
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]  # prometheus.io/* say where it is scraped


def sidecar_pod(namespace: str, name: str, ip: str, labels: Mapping[str, str],
                annotations: Mapping[str, str] | None = None) -> Pod:
    """A workload (or gateway) pod as Istio's injector leaves it: annotated to be scraped
    on its merged metrics (15020, unless `annotations` say otherwise) and with the labels
    the injector adds (canonical service and revision, TLS mode)."""
    injected = {
        "security.istio.io/tlsMode": "istio",
        "service.istio.io/canonical-name": labels.get(
            "service.istio.io/canonical-name", labels.get("app", name)),
        "service.istio.io/canonical-revision": labels.get(
            "service.istio.io/canonical-revision", labels.get("version", "latest")),
    }
    return Pod(namespace, name, ip, tuple(sorted({**injected, **labels}.items())),
               tuple(sorted((annotations or SCRAPE_ANNOTATIONS).items())))


def control_plane_pod(debug_port: int) -> Pod:
    """The control plane as istiod's pod: annotated, as istiod's Deployment annotates it, to
    be scraped on its debug port (at the default path, /metrics)."""
    return Pod(CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_POD, "127.0.0.1",
               tuple(sorted(CONTROL_PLANE_LABELS.items())),
               (("prometheus.io/port", str(debug_port)), ("prometheus.io/scrape", "true")))


_NOT_IN_A_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def meta_name(key: str) -> str:
    """A Kubernetes label or annotation key as pod discovery writes it in a meta label."""
    return _NOT_IN_A_LABEL_NAME.sub("_", key)


def file_sd_entry(pod: Pod, node: str) -> dict[str, Any]:
    """The pod as one file_sd target group: its address (what the relabelling rewrites from
    the port annotation) and the meta labels Kubernetes would give it."""
    labels = {
        "__meta_kubernetes_namespace": pod.namespace,
        "__meta_kubernetes_pod_name": pod.name,
        "__meta_kubernetes_pod_ip": pod.ip,
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_ready": "true",
        "__meta_kubernetes_pod_node_name": node,
    }
    for key, value in pod.annotations:
        labels[f"__meta_kubernetes_pod_annotation_{meta_name(key)}"] = value
        labels[f"__meta_kubernetes_pod_annotationpresent_{meta_name(key)}"] = "true"
    for key, value in pod.labels:
        labels[f"__meta_kubernetes_pod_label_{meta_name(key)}"] = value
        labels[f"__meta_kubernetes_pod_labelpresent_{meta_name(key)}"] = "true"
    return {"targets": [pod.ip], "labels": labels}


def file_sd(pods: Iterable[Pod], node: str) -> list[dict[str, Any]]:
    """Every pod's target group, in a stable order (the file is rewritten only on change)."""
    return [file_sd_entry(p, node) for p in sorted(pods, key=lambda p: (p.namespace, p.name))]


def _pod_relabelling() -> list[dict[str, Any]]:
    """The `kubernetes-pods` job's relabelling, rule for rule as Istio's add-on has it."""
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    return [
        {"action": "keep", "source_labels": [f"{annotation}scrape"], "regex": "true"},
        {"action": "drop", "source_labels": [f"{annotation}scrape_slow"], "regex": "true"},
        {"action": "replace", "source_labels": [f"{annotation}scheme"], "regex": "(https?)",
         "target_label": "__scheme__"},
        {"action": "replace", "source_labels": [f"{annotation}path"], "regex": "(.+)",
         "target_label": "__metrics_path__"},
        {"action": "replace", "source_labels": [f"{annotation}port", "__meta_kubernetes_pod_ip"],
         "regex": r"(\d+);(([A-Fa-f0-9]{1,4}::?){1,7}[A-Fa-f0-9]{1,4})",
         "replacement": "[$2]:$1", "target_label": "__address__"},
        {"action": "replace", "source_labels": [f"{annotation}port", "__meta_kubernetes_pod_ip"],
         "regex": r"(\d+);((([0-9]+?)(\.|$)){4})", "replacement": "$2:$1",
         "target_label": "__address__"},
        {"action": "labelmap", "regex": f"{annotation}param_(.+)",
         "replacement": "__param_$1"},
        {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
        {"action": "replace", "source_labels": ["__meta_kubernetes_namespace"],
         "target_label": "namespace"},
        {"action": "replace", "source_labels": ["__meta_kubernetes_pod_name"],
         "target_label": "pod"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"],
         "regex": "Pending|Succeeded|Failed|Completed"},
        {"action": "replace", "source_labels": ["__meta_kubernetes_pod_node_name"],
         "target_label": "node"},
    ]


def _seconds(value: float) -> str:
    return f"{value:g}s"


def prometheus_config(targets_file: str, listen: str, scrape_interval: float = 15.0,
                      scrape_timeout: float = 10.0) -> dict[str, Any]:
    """prometheus.yml: Istio's add-on's global settings and its pod jobs (the pods read
    from `targets_file`, re-read as it changes), and Prometheus scraping itself at `listen`.
    The add-on's jobs for the API server, nodes, cAdvisor, Service endpoints and probes
    have nothing to scrape without Kubernetes, so they are left out."""
    timeout = min(scrape_timeout, scrape_interval)
    pods_sd = [{"files": [targets_file], "refresh_interval": "30s"}]
    slow = [dict(rule) for rule in _pod_relabelling()]
    slow[0:2] = [{"action": "keep", "regex": "true", "source_labels": [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape_slow"]}]
    return {
        "global": {"scrape_interval": _seconds(scrape_interval),
                   "scrape_timeout": _seconds(timeout), "evaluation_interval": "1m"},
        "scrape_configs": [
            {"job_name": "kubernetes-pods", "honor_labels": True, "file_sd_configs": pods_sd,
             "relabel_configs": _pod_relabelling()},
            {"job_name": "kubernetes-pods-slow", "honor_labels": True,
             "file_sd_configs": pods_sd, "relabel_configs": slow,
             "scrape_interval": _seconds(max(300.0, scrape_interval)),
             "scrape_timeout": "30s"},
            {"job_name": "prometheus", "static_configs": [{"targets": [listen]}]},
        ],
    }
