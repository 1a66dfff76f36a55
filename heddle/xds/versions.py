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
    body: any_pb2.Any
    # The delta form, made once on the translation worker (with the body): the event loop
    # then only copies it into a response, instead of building a thousand per response.
    delta: discovery_pb2.Resource


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def versioned_one(name: str, message: Message) -> VersionedResource:
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    version = _digest(packed.value)
    return VersionedResource(name, version, packed,
                             discovery_pb2.Resource(name=name, version=version, resource=packed))


def type_version(resources: dict[str, VersionedResource]) -> str:
    joined = "\n".join(f"{name}={r.version}" for name, r in sorted(resources.items()))
    return _digest(joined.encode())
