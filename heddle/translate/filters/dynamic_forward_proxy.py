"""The outbound proxy's resolver of requested hosts, for routes to the PassthroughCluster."""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.egress import DFP_FILTER, passthrough_filter
from heddle.translate.filters.context import Direction, FilterContext


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    if context.direction is not Direction.OUTBOUND:
        return []
    return [hcm.HttpFilter(name=DFP_FILTER, typed_config=passthrough_filter())]
