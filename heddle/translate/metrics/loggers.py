"""The stats access loggers (`envoy.access_loggers.stats`) that count Istio's standard
metrics: one per kind of traffic an Envoy filter sees (HTTP, gRPC, a TCP connection's end
and its start), each with a filter saying which streams it counts and its labels as Envoy
formatters (see sides.py for what each side knows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.config.accesslog.v3 import accesslog_pb2 as al
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.data.accesslog.v3 import accesslog_pb2 as log_types
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, wrappers_pb2

from heddle.model.metric_names import STAT_PREFIX
from heddle.translate.metrics.overrides import MetricOverrides
from heddle.translate.metrics.standard import (
    STANDARD_METRICS,
    Kind,
    StandardMetric,
    Traffic,
)

STATS_LOGGER = "envoy.access_loggers.stats"
GRPC_CONTENT_TYPE = "application/grpc"

Labels = Mapping[str, str]  # label name -> Envoy formatter


def _header(name: str, exact: str = "", prefix: str = "", invert: bool = False,
            ) -> al.AccessLogFilter:
    matcher = string_pb2.StringMatcher(exact=exact) if exact else \
        string_pb2.StringMatcher(prefix=prefix)
    return al.AccessLogFilter(header_filter=al.HeaderFilter(header=rc.HeaderMatcher(
        name=name, string_match=matcher, invert_match=invert,
        # An absent header is no match, and with `invert` then matches: "not gRPC".
        treat_missing_header_as_empty=True)))


def _log_types(*types: int) -> al.AccessLogFilter:
    return al.AccessLogFilter(log_type_filter=al.LogTypeFilter(types=list(types)))


def _all(*filters: al.AccessLogFilter) -> al.AccessLogFilter:
    return filters[0] if len(filters) == 1 else al.AccessLogFilter(
        and_filter=al.AndFilter(filters=list(filters)))


def _stat(metric: StandardMetric, labels: Labels) -> stats_pb2.Config.Stat:
    return stats_pb2.Config.Stat(name=metric.stat_name, tags=[
        stats_pb2.Config.Tag(name=name, value_format=value) for name, value in labels.items()])


def _logger(metrics: Iterable[StandardMetric], labels: Labels, reporter: str,
            overrides: MetricOverrides, when: al.AccessLogFilter) -> list[al.AccessLog]:
    config = stats_pb2.Config(stat_prefix=STAT_PREFIX)
    for metric in metrics:
        if overrides.disabled(metric.name, reporter):
            continue
        tagged = dict(overrides.labels(metric.name, reporter,
                                       tuple((n, labels[n]) for n in metric.labels)))
        if metric.kind is Kind.DISTRIBUTION:
            config.histograms.add(stat=_stat(metric, tagged), value_format=metric.value,
                                  unit=stats_pb2.Config.Histogram.Unit.Value(metric.unit))
        elif metric.value:
            config.counters.add(stat=_stat(metric, tagged), value_format=metric.value)
        else:
            config.counters.add(stat=_stat(metric, tagged),
                                value_fixed=wrappers_pb2.UInt64Value(value=1))
    if not config.counters and not config.histograms:
        return []
    packed = any_pb2.Any()
    packed.Pack(config)
    return [al.AccessLog(name=STATS_LOGGER, typed_config=packed, filter=when)]


def _of(traffic: Traffic, at_open: bool = False) -> list[StandardMetric]:
    return [m for m in STANDARD_METRICS if m.traffic is traffic and m.at_open == at_open]


def http_loggers(labels: Labels, reporter: str, overrides: MetricOverrides,
                 tunnels: bool = False) -> list[al.AccessLog]:
    """For an HTTP connection manager: requests (HTTP and gRPC, told apart by content
    type), and with `tunnels` (the outbound proxy) CONNECT tunnels as TCP connections.
    `labels`: every label of HTTP_LABELS but request_protocol and grpc_response_status."""
    end = _log_types(log_types.DownstreamEnd)
    not_connect = [_header(":method", exact="CONNECT", invert=True)] if tunnels else []
    # A tag's value may not be empty: Envoy's gRPC status is, for a request that is not
    # gRPC, as Istio's label is.
    plain = {**labels, "request_protocol": "http", "grpc_response_status": "%GRPC_STATUS_NUMBER%"}
    grpc = {**plain, "request_protocol": "grpc"}
    found = [
        *_logger(_of(Traffic.HTTP), plain, reporter, overrides, _all(
            end, _header("content-type", prefix=GRPC_CONTENT_TYPE, invert=True), *not_connect)),
        *_logger([*_of(Traffic.HTTP), *_of(Traffic.GRPC)], grpc, reporter, overrides, _all(
            end, _header("content-type", prefix=GRPC_CONTENT_TYPE), *not_connect)),
    ]
    if tunnels:
        connect = _header(":method", exact="CONNECT")
        tcp = {**labels, "request_protocol": "tcp"}
        found += [
            *_logger(_of(Traffic.TCP), tcp, reporter, overrides, _all(end, connect)),
            *_logger(_of(Traffic.TCP, at_open=True), tcp, reporter, overrides, _all(
                _log_types(log_types.DownstreamTunnelSuccessfullyEstablished), connect)),
        ]
    return found


def tcp_loggers(labels: Labels, reporter: str, overrides: MetricOverrides,
                ) -> list[al.AccessLog]:
    """For a TCP proxy: a connection's bytes and close when it ends, its open when the
    upstream connects (the proxy must flush a log then: `flush_access_log_on_connected`)."""
    tcp = {**labels, "request_protocol": "tcp"}
    return [
        *_logger(_of(Traffic.TCP), tcp, reporter, overrides,
                 _log_types(log_types.TcpConnectionEnd)),
        *_logger(_of(Traffic.TCP, at_open=True), tcp, reporter, overrides,
                 _log_types(log_types.TcpUpstreamConnected)),
    ]


# What the other access logs skip: the logs flushed when a connection or tunnel opens, which
# exist only for the opened-connections counters.
OPENING_LOGS = (log_types.TcpUpstreamConnected, log_types.DownstreamTunnelSuccessfullyEstablished)


def skip_opening_logs() -> al.AccessLogFilter:
    return al.AccessLogFilter(log_type_filter=al.LogTypeFilter(types=list(OPENING_LOGS),
                                                               exclude=True))
