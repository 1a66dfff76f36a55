"""What a filter builder is given, and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import any_pb2
from google.protobuf.message import Message

from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot


class Direction(StrEnum):
    INBOUND = "inbound"  # a listener peers reach the workload through
    OUTBOUND = "outbound"  # the HTTP proxy the application calls out through
    # A gateway's listener: it authenticates and authorizes what arrives, as an inbound
    # side does, and routes it to services, as an outbound side does.
    GATEWAY = "gateway"

    @property
    def authorizes(self) -> bool:
        """Whether RequestAuthentication and AuthorizationPolicy act on this side."""
        return self in (Direction.INBOUND, Direction.GATEWAY)

    @property
    def routes(self) -> bool:
        """Whether VirtualService routes (and the filters they configure) act here."""
        return self in (Direction.OUTBOUND, Direction.GATEWAY)


@dataclass(frozen=True)
class FilterContext:
    """One HTTP connection manager being built: for which proxy, which side, which port
    (the inbound listener's or the gateway server's; 0 for the outbound proxy listener,
    which serves every port)."""

    snapshot: MeshSnapshot
    proxy: Proxy
    direction: Direction
    port: int = 0


FilterBuilder = Callable[[FilterContext], list[hcm.HttpFilter]]


def http_filter(name: str, config: Message) -> hcm.HttpFilter:
    packed = any_pb2.Any()
    packed.Pack(config)
    return hcm.HttpFilter(name=name, typed_config=packed)
