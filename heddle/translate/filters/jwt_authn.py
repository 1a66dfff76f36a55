"""RequestAuthentication: verify JWTs before any authorization reads their claims (on a
sidecar's inbound side and on gateways)."""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.filters.context import FilterContext, http_filter
from heddle.translate.jwt import jwt_filter


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    if not context.direction.authorizes:
        return []
    return [http_filter(name, config) for name, config in jwt_filter(context.snapshot,
                                                                      context.proxy)]
