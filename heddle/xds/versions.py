"""Content versions: a resource's version is a hash of its bytes, a type's of its members."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message


@dataclass(frozen=True)
class VersionedResource:
    name: str
    version: str
    # The delta form, made once on the translation worker: the event loop then only copies
    # it into a response, instead of building a thousand per response.
    delta: discovery_pb2.Resource

    @property
    def body(self) -> any_pb2.Any:
        """The packed resource (SotW sends it as is): the delta form's, not a second copy."""
        packed: any_pb2.Any = self.delta.resource
        return packed


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def versioned_one(name: str, message: Message) -> VersionedResource:
    resource = discovery_pb2.Resource(name=name)
    resource.resource.Pack(message, deterministic=True)
    resource.version = _digest(resource.resource.value)
    return VersionedResource(name, resource.version, resource)


def type_version(resources: dict[str, VersionedResource]) -> str:
    joined = "\n".join(f"{name}={r.version}" for name, r in sorted(resources.items()))
    return _digest(joined.encode())
