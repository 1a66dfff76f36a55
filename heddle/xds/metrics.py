"""The control plane's metrics, in istiod's names (so that Istio's control-plane dashboard
works as written): xDS pushes, rejects, connected proxies, push time, response sizes,
convergence, push triggers, configuration events and certificate signing.

Counters are exposed without the `_total` suffix prometheus-client would add, as istiod
exposes them (`pilot_xds_pushes`, not `pilot_xds_pushes_total`): the dashboards query those
names. Histograms are prometheus-client's.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Histogram, generate_latest

# istiod's type label: the xDS type's short name.
TYPE_NAMES = {
    "type.googleapis.com/envoy.config.cluster.v3.Cluster": "cds",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment": "eds",
    "type.googleapis.com/envoy.config.listener.v3.Listener": "lds",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration": "rds",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret": "sds",
}
# istiod's buckets (seconds; bytes for sizes).
PUSH_TIME_BUCKETS = (.01, .1, 1, 3, 5, 10, 20, 30)
CONVERGENCE_BUCKETS = (.1, .5, 1, 3, 5, 10, 20, 30)
SIZE_BUCKETS = (1, 10000, 1000000, 4000000, 10000000, 40000000)

Labels = tuple[tuple[str, str], ...]


def type_name(type_url: str) -> str:
    return TYPE_NAMES.get(type_url, type_url.rsplit(".", 1)[-1].lower())


class _Counters:
    """Counters by name and labels, written as istiod names them."""

    def __init__(self) -> None:
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._help: dict[str, str] = {}
        self._lock = threading.Lock()  # the gRPC serializer may run off the event loop

    def declare(self, name: str, help_text: str) -> None:
        self._help[name] = help_text
        self._values.setdefault(name, {})

    def inc(self, name: str, labels: Labels = (), amount: float = 1.0) -> None:
        with self._lock:
            series = self._values[name]
            series[labels] = series.get(labels, 0.0) + amount

    def value(self, name: str, labels: Labels = ()) -> float:
        return self._values[name].get(labels, 0.0)

    def text(self, kind: str) -> str:
        lines = []
        with self._lock:
            for name, series in self._values.items():
                lines += [f"# HELP {name} {self._help.get(name, name)}", f"# TYPE {name} {kind}"]
                for labels, value in sorted(series.items()):
                    rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
        return "\n".join(lines) + "\n" if lines else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ControlPlaneMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.counters = _Counters()
        for name, help_text in (
                ("pilot_xds_pushes", "Pilot build and send errors for lds, rds, cds and eds."),
                ("pilot_total_xds_rejects", "Total number of XDS responses from pilot "
                                            "rejected by proxy."),
                ("pilot_push_triggers", "Total number of times a push was triggered, "
                                        "labeled by reason for the push."),
                ("pilot_k8s_cfg_events", "Events from the configuration source (files here), "
                                         "by kind and event."),
                ("citadel_server_csr_count", "The number of CSRs received by Citadel server."),
                ("citadel_server_success_cert_issuance_count",
                 "The number of certificates issuances that have succeeded.")):
            self.counters.declare(name, help_text)
        self.gauges = _Counters()
        self.gauges.declare("pilot_xds", "Number of endpoints connected to this pilot using "
                                         "XDS.")
        self.connected: Callable[[], int] = lambda: 0
        # Per proxy pushed: building its configuration and queueing what changed.
        self.push_time = Histogram("pilot_xds_push_time", "Total time in seconds Pilot takes "
                                   "to push lds, rds, cds and eds.",
                                   buckets=PUSH_TIME_BUCKETS, registry=self.registry)
        self.convergence = Histogram("pilot_proxy_convergence_time", "Delay in seconds "
                                     "between config change and a proxy receiving all "
                                     "required configuration.", buckets=CONVERGENCE_BUCKETS,
                                     registry=self.registry)
        self.config_size = Histogram("pilot_xds_config_size_bytes", "Distribution of "
                                     "configuration sizes pushed to clients", ["type"],
                                     buckets=SIZE_BUCKETS, registry=self.registry)

    # What the parts of the control plane report

    def pushed(self, type_url: str) -> None:
        self.counters.inc("pilot_xds_pushes", (("type", type_name(type_url)),))

    def rejected(self, type_url: str) -> None:
        self.counters.inc("pilot_total_xds_rejects", (("type", type_name(type_url)),))

    def sized(self, type_url: str, size: int) -> None:
        self.config_size.labels(type_name(type_url)).observe(size)

    def triggered(self, reason: str) -> None:
        self.counters.inc("pilot_push_triggers", (("type", reason),))

    def config_event(self, kind: str, event: str) -> None:
        self.counters.inc("pilot_k8s_cfg_events", (("event", event), ("type", kind)))

    def csr(self, issued: bool) -> None:
        self.counters.inc("citadel_server_csr_count")
        if issued:
            self.counters.inc("citadel_server_success_cert_issuance_count")

    def exposition(self) -> bytes:
        """Prometheus's text format."""
        self.gauges._values["pilot_xds"] = {(("version", "heddle"),): float(self.connected())}
        return (self.counters.text("counter") + self.gauges.text("gauge")).encode() + \
            generate_latest(self.registry)
