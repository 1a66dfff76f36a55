"""Fault injection where routes are (the outbound proxy, gateways): acts only on routes
carrying a VirtualService fault."""

from __future__ import annotations

from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.filters.context import FilterContext, http_filter
from heddle.translate.route_actions import FAULT_FILTER


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    if not context.direction.routes:
        return []
    return [http_filter(FAULT_FILTER, fault_pb2.HTTPFault())]
