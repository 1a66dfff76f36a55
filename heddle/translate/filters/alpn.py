"""ALPN for HTTP over mTLS to ports of protocol AUTO (see `translate/alpn.py`): present
where routes are (the outbound proxy, gateways), disabled unless a route enables it."""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.alpn import ALPN_FILTER, alpn_filter_config
from heddle.translate.filters.context import FilterContext


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    if not context.direction.routes:
        return []
    return [hcm.HttpFilter(name=ALPN_FILTER, typed_config=alpn_filter_config(), disabled=True)]
