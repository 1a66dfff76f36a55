"""CORS where routes are (the outbound proxy, gateways): acts only on routes carrying a
VirtualService corsPolicy."""

from __future__ import annotations

from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.filters.context import FilterContext, http_filter
from heddle.translate.route_actions import CORS_FILTER


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    if not context.direction.routes:
        return []
    return [http_filter(CORS_FILTER, cors_pb2.Cors())]
