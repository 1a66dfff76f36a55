"""Content versions: a resource's version is a hash of its bytes, a type's of its members.

Each resource is also kept already encoded as one member of a response of either protocol.
Protobuf parses concatenated encodings of a message as their merge, and a repeated field
merges by appending, so a response is its header's encoding followed by its resources'
(`encoded_response`): a cluster shared by a thousand proxies is serialized once, not once
per response, and the event loop only joins bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message


@dataclass(frozen=True, slots=True, weakref_slot=True)
class VersionedResource:
    name: str
    version: str
    size: int  # bytes of the packed resource itself
    # DeltaDiscoveryResponse(resources=[this]) and DiscoveryResponse(resources=[this]),
    # encoded: what this resource adds to a response of either protocol.
    delta_part: bytes
    sotw_part: bytes

    @property
    def body(self) -> any_pb2.Any:
        """The packed resource, decoded again (for config dumps, not on the push path)."""
        body: any_pb2.Any = discovery_pb2.DiscoveryResponse.FromString(
            self.sotw_part).resources[0]
        return body


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def versioned_one(name: str, message: Message) -> VersionedResource:
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    version = _digest(packed.value)
    delta = discovery_pb2.DeltaDiscoveryResponse(
        resources=[discovery_pb2.Resource(name=name, version=version, resource=packed)])
    sotw = discovery_pb2.DiscoveryResponse(resources=[packed])
    return VersionedResource(name, version, len(packed.value),
                             delta.SerializeToString(deterministic=True),
                             sotw.SerializeToString(deterministic=True))


def encoded_response(header: Message, parts: Iterable[bytes]) -> bytes:
    """`header` (a response without resources) with `parts` appended as its resources."""
    return b"".join((header.SerializeToString(deterministic=True), *parts))


def type_version(resources: dict[str, VersionedResource]) -> str:
    joined = "\n".join(f"{name}={r.version}" for name, r in sorted(resources.items()))
    return _digest(joined.encode())
