"""First in every chain: the request headers Heddle's own filters set for the access log are
removed from what the client sent, so that a client cannot forge them.

Today that is the header naming the shadow-mode rate-limit rules a request would have
spent (`x-heddle-ratelimit-shadow`, which the shadow local_ratelimit filter adds later in
the chain and every access log reads): without this, a client sending it would log as
shadow-limited on any proxy.
"""

from __future__ import annotations

from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate.filters.context import FilterContext, http_filter
from heddle.translate.rate_limits import SHADOW_HEADER

NAME = "heddle.internal_headers"
INTERNAL_REQUEST_HEADERS = (SHADOW_HEADER,)


def build(_: FilterContext) -> list[hcm.HttpFilter]:
    mutation = header_mutation_pb2.HeaderMutation()
    for header in INTERNAL_REQUEST_HEADERS:
        mutation.mutations.request_mutations.add().remove = header
    return [http_filter(NAME, mutation)]
