"""The service graph, from Istio's standard metrics: workloads and services as nodes, and the
traffic between them as edges with requests per second, error rate and p99 latency.

Pure: two scrapes of every proxy's `istio_requests_total` and
`istio_request_duration_milliseconds` (counters, cumulative) go in, rates come out, the way
Prometheus's `rate()` and `histogram_quantile()` would compute them over the interval between
the scrapes. Each request is counted once: from the destination's report when the
destination reported it, from the source's only for service pairs the destination never
reported (a request that never reached a sidecar: no healthy upstream, a timeout, an
external host).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

REQUESTS = "istio_requests_total"
DURATION_BUCKETS = "istio_request_duration_milliseconds_bucket"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Sample:
    """One series of a counter: its metric name, labels and cumulative value."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Scrape:
    """Every proxy's samples, read at `at` (seconds, monotonic)."""

    at: float
    samples: tuple[Sample, ...]


@dataclass(frozen=True)
class EdgeKey:
    source: str  # a node id
    target: str


@dataclass
class EdgeTraffic:
    requests: float = 0.0  # in the interval
    errors: float = 0.0  # 5xx
    denied: float = 0.0  # 403: refused by an authorization policy
    total: float = 0.0  # cumulative, since the proxies started
    mtls: bool = False
    protocol: str = ""
    # upper bound (ms) -> count in the interval, cumulative over buckets as Prometheus has them
    buckets: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # "workload", "service" or "unknown" (a caller outside the mesh)
    name: str
    namespace: str
    version: str = ""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    requests_per_second: float
    error_rate: float  # of the interval's requests, 0..1
    p99_ms: float | None  # None: no requests in the interval
    total: float
    mtls: bool
    denied: bool
    protocol: str

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, "target": self.target,
                "rps": round(self.requests_per_second, 3),
                "errorRate": round(self.error_rate, 4),
                "p99Ms": None if self.p99_ms is None else round(self.p99_ms, 1),
                "total": int(self.total), "mtls": self.mtls, "denied": self.denied,
                "protocol": self.protocol}


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    interval_s: float

    def to_json(self) -> dict[str, object]:
        return {"intervalSeconds": round(self.interval_s, 3),
                "nodes": [{"id": n.id, "kind": n.kind, "name": n.name,
                           "namespace": n.namespace, "version": n.version}
                          for n in self.nodes],
                "edges": [e.to_json() for e in self.edges]}


def _workload(labels: Mapping[str, str], side: str) -> Node:
    name = labels.get(f"{side}_workload", UNKNOWN) or UNKNOWN
    namespace = labels.get(f"{side}_workload_namespace", UNKNOWN) or UNKNOWN
    if name == UNKNOWN:
        return Node(f"unknown:{side}", "unknown", UNKNOWN, namespace)
    version = labels.get(f"{side}_version", "")
    return Node(f"workload:{namespace}/{name}", "workload", name, namespace,
                "" if version == UNKNOWN else version)


def _service(labels: Mapping[str, str]) -> Node:
    host = labels.get("destination_service", UNKNOWN) or UNKNOWN
    name = labels.get("destination_service_name", "") or host.split(".", 1)[0]
    namespace = labels.get("destination_service_namespace", UNKNOWN) or UNKNOWN
    return Node(f"service:{host}", "service", name, namespace)


def _series_key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample.name, tuple(sorted(sample.labels.items()))


def _increase(before: Mapping[tuple[str, tuple[tuple[str, str], ...]], float],
              sample: Sample) -> float:
    """What a counter gained since the earlier scrape; a counter that went down was reset
    (its proxy restarted), so all of its value is new, as Prometheus's `rate()` reads it."""
    previous = before.get(_series_key(sample))
    if previous is None or sample.value < previous:
        return sample.value if previous is not None else 0.0
    return sample.value - previous


def _pair(labels: Mapping[str, str]) -> tuple[str, str, str]:
    """A request's (source workload, its namespace, destination service)."""
    return (labels.get("source_workload", UNKNOWN), labels.get("source_workload_namespace",
            UNKNOWN), labels.get("destination_service", UNKNOWN))


def _counted(samples: Iterable[Sample]) -> list[Sample]:
    """Each request once: the destination's report, or the source's where the destination
    reported nothing for that service pair."""
    samples = list(samples)
    reported = {_pair(s.labels) for s in samples if s.labels.get("reporter") == "destination"}
    return [s for s in samples
            if s.labels.get("reporter") == "destination"
            or (s.labels.get("reporter") == "source" and _pair(s.labels) not in reported)]


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """`histogram_quantile`: linear interpolation within the bucket holding the q-th
    request; None when the buckets are empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):  # beyond the last finite bucket: its bound is the answer
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def build(earlier: Scrape | None, later: Scrape) -> Graph:
    """The graph of what `later` shows, with rates over the interval since `earlier` (none:
    no rates yet, only totals)."""
    before = {} if earlier is None else {_series_key(s): s.value for s in earlier.samples}
    interval = 0.0 if earlier is None else max(later.at - earlier.at, 0.0)
    nodes: dict[str, Node] = {}
    traffic: dict[EdgeKey, EdgeTraffic] = {}

    def edges_of(labels: Mapping[str, str]) -> list[EdgeKey]:
        source, service = _workload(labels, "source"), _service(labels)
        destination = _workload(labels, "destination")
        for node in (source, service, destination):
            if node.kind != "unknown" or node is source:
                nodes.setdefault(node.id, node)
        keys = [EdgeKey(source.id, service.id)]
        if destination.kind == "workload":
            keys.append(EdgeKey(service.id, destination.id))
        return keys

    for sample in _counted(s for s in later.samples if s.name in (REQUESTS, DURATION_BUCKETS)):
        gained = _increase(before, sample) if earlier is not None else 0.0
        labels = sample.labels
        for key in edges_of(labels):
            edge = traffic.setdefault(key, EdgeTraffic())
            if sample.name == REQUESTS:
                code = labels.get("response_code", "")
                edge.requests += gained
                edge.total += sample.value
                edge.errors += gained if code.startswith("5") else 0.0
                edge.denied += gained if code == "403" else 0.0
                edge.mtls = edge.mtls or labels.get("connection_security_policy") == "mutual_tls"
                edge.protocol = labels.get("request_protocol", edge.protocol)
            else:
                bound = float(labels.get("le", "+Inf"))
                edge.buckets[bound] = edge.buckets.get(bound, 0.0) + gained
    edges = tuple(
        Edge(key.source, key.target,
             requests_per_second=t.requests / interval if interval else 0.0,
             error_rate=t.errors / t.requests if t.requests else 0.0,
             p99_ms=quantile(0.99, t.buckets), total=t.total, mtls=t.mtls,
             denied=t.denied > 0, protocol=t.protocol)
        for key, t in sorted(traffic.items(), key=lambda kv: (kv[0].source, kv[0].target)))
    return Graph(tuple(sorted(nodes.values(), key=lambda n: n.id)), edges, interval)
