"""Where Prometheus scrapes a workload, and where its application's own metrics are: Istio's
reading of the `prometheus.io/*` annotations."""

from __future__ import annotations

from dataclasses import dataclass

from heddle.model import ports

MERGED_PATH = "/stats/prometheus"
# What Istio's injector writes on every pod, for Prometheus to find the merged endpoint.
SCRAPE_ANNOTATIONS = {"prometheus.io/scrape": "true",
                      "prometheus.io/port": str(ports.MERGED_METRICS),
                      "prometheus.io/path": MERGED_PATH}


@dataclass(frozen=True)
class AppMetrics:
    """Where the application serves its own metrics (its address, the annotated port/path)."""

    address: str
    port: int
    path: str = "/metrics"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/{self.path.lstrip('/')}"


def app_metrics_of(annotations: dict[str, str], app_address: str) -> AppMetrics | None:
    """Scrape unless `prometheus.io/scrape` is "false", from `prometheus.io/port` (without
    it, nothing), at `prometheus.io/path` (default /metrics), as Istio's agent merges them."""
    if annotations.get("prometheus.io/scrape", "true").lower() == "false":
        return None
    port = annotations.get("prometheus.io/port", "")
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return AppMetrics(app_address, int(port), annotations.get("prometheus.io/path") or "/metrics")
