"""AuthorizationPolicy DENY, ALLOW and AUDIT: one RBAC filter each, in that order."""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.authz import http_rbac_filters
from heddle.translate.filters.context import Direction, FilterContext, http_filter


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    if context.direction is not Direction.INBOUND:
        return []
    return [http_filter(name, config) for name, config in http_rbac_filters(context.snapshot,
                                                                             context.proxy)]
