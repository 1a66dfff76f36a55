"""AuthorizationPolicy DENY, ALLOW and AUDIT: one RBAC filter each, in that order (on a
sidecar's inbound side and on gateways)."""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.authz import http_rbac_filters
from heddle.translate.filters.context import FilterContext, http_filter


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    if not context.direction.authorizes:
        return []
    return [http_filter(name, config) for name, config in http_rbac_filters(context.snapshot,
                                                                             context.proxy)]
