"""The router, last on every chain: it forwards what the filters before it let through."""

from __future__ import annotations

from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.filters.context import FilterContext, http_filter

ROUTER_FILTER = "envoy.filters.http.router"


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    return [http_filter(ROUTER_FILTER, router_pb2.Router())]
