"""The Prometheus add-on's configuration: Istio's add-on's pod job, fed pods that carry the
meta labels Kubernetes' pod discovery would give them (the relabelling itself is run by a
real Prometheus in tests/e2e/test_prometheus_addon.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from heddle.local.prometheus_config import (
    control_plane_pod,
    file_sd,
    meta_name,
    prometheus_config,
    sidecar_pod,
)


def test_a_sidecar_pod_is_annotated_for_its_merged_metrics_as_the_injector_does() -> None:
    pod = sidecar_pod("default", "reviews-v2", "127.0.20.6", {"app": "reviews", "version": "v2"})
    [entry] = file_sd([pod], node="host-1")
    labels = entry["labels"]
    assert entry["targets"] == ["127.0.20.6"]
    assert labels["__meta_kubernetes_namespace"] == "default"
    assert labels["__meta_kubernetes_pod_name"] == "reviews-v2"
    assert labels["__meta_kubernetes_pod_ip"] == "127.0.20.6"
    assert labels["__meta_kubernetes_pod_phase"] == "Running"
    assert labels["__meta_kubernetes_pod_node_name"] == "host-1"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_port"] == "15020"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_path"] == "/stats/prometheus"
    assert labels["__meta_kubernetes_pod_label_app"] == "reviews"
    assert labels["__meta_kubernetes_pod_label_version"] == "v2"
    # The labels Istio's injector adds to every pod, named as pod discovery names them.
    assert labels["__meta_kubernetes_pod_label_service_istio_io_canonical_name"] == "reviews"
    assert labels["__meta_kubernetes_pod_label_service_istio_io_canonical_revision"] == "v2"
    assert labels["__meta_kubernetes_pod_label_security_istio_io_tlsMode"] == "istio"


def test_the_pods_annotations_say_where_it_is_scraped() -> None:
    pod = sidecar_pod("default", "web", "127.0.0.9", {"app": "web"},
                      {"prometheus.io/scrape": "false", "prometheus.io/port": "9100"})
    [entry] = file_sd([pod], node="n")
    assert entry["labels"]["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "false"
    assert entry["labels"]["__meta_kubernetes_pod_annotation_prometheus_io_port"] == "9100"
    assert entry["labels"]["__meta_kubernetes_pod_annotationpresent_prometheus_io_port"] == (
        "true")


def test_canonical_names_fall_back_to_the_workload_name_and_latest() -> None:
    [entry] = file_sd([sidecar_pod("shop", "cart", "127.0.0.9", {})], node="n")
    assert entry["labels"]["__meta_kubernetes_pod_label_service_istio_io_canonical_name"] == "cart"
    assert entry["labels"][
        "__meta_kubernetes_pod_label_service_istio_io_canonical_revision"] == "latest"


def test_the_control_plane_is_istiods_pod_scraped_on_its_debug_port() -> None:
    [entry] = file_sd([control_plane_pod(15014)], node="n")
    labels = entry["labels"]
    assert labels["__meta_kubernetes_namespace"] == "istio-system"
    assert labels["__meta_kubernetes_pod_label_app"] == "istiod"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_port"] == "15014"
    assert "__meta_kubernetes_pod_annotation_prometheus_io_path" not in labels  # /metrics


def test_label_keys_become_meta_label_names_as_kubernetes_discovery_writes_them() -> None:
    assert meta_name("app.kubernetes.io/name") == "app_kubernetes_io_name"
    assert meta_name("istio.io/rev") == "istio_io_rev"


def test_pods_are_listed_in_a_stable_order() -> None:
    a = sidecar_pod("default", "b", "127.0.0.2", {})
    b = sidecar_pod("default", "a", "127.0.0.3", {})
    assert file_sd([a, b], "n") == file_sd([b, a], "n")


def test_the_pod_job_is_istios_kubernetes_pods_job_reading_the_pods_file() -> None:
    config = prometheus_config("/state/pods.json", "127.0.0.1:9090", scrape_interval=15)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"kubernetes-pods", "kubernetes-pods-slow", "prometheus"}
    pods = jobs["kubernetes-pods"]
    assert pods["honor_labels"] is True
    assert pods["file_sd_configs"][0]["files"] == ["/state/pods.json"]
    rules = pods["relabel_configs"]
    assert rules[0] == {"action": "keep", "regex": "true", "source_labels": [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape"]}
    targets = {rule.get("target_label") for rule in rules}
    assert {"__address__", "__metrics_path__", "namespace", "pod", "node"} <= targets
    assert {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"} in rules
    assert config["global"]["scrape_interval"] == "15s"
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9090"]}]


def test_a_scrape_interval_under_the_timeout_shortens_the_timeout() -> None:
    config = prometheus_config("/p.json", "127.0.0.1:9090", scrape_interval=2)
    assert config["global"] == {"scrape_interval": "2s", "scrape_timeout": "2s",
                                "evaluation_interval": "1m"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) "
                    "is not installed")
def test_promtool_accepts_the_configuration(tmp_path: Path) -> None:
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps(file_sd([control_plane_pod(15014)], "n")))
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps(prometheus_config(str(pods), "127.0.0.1:9090")))
    out = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
