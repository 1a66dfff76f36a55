"""AuthorizationPolicy CUSTOM: a shadow RBAC filter marks what the rules match, ext_authz asks
the provider about it. Before DENY and ALLOW, as Istio orders them."""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.authz import custom_filters
from heddle.translate.filters.context import FilterContext, http_filter


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    if not context.direction.authorizes:
        return []
    return [http_filter(name, config) for name, config in custom_filters(context.snapshot,
                                                                          context.proxy)]
