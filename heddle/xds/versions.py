"""Content versions: a resource's version is a hash of its bytes, a type's of its members."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.protobuf import any_pb2
from google.protobuf.message import Message


@dataclass(frozen=True)
class VersionedResource:
    name: str
    version: str
    body: any_pb2.Any


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def versioned_one(name: str, message: Message) -> VersionedResource:
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return VersionedResource(name, _digest(packed.value), packed)


def type_version(resources: dict[str, VersionedResource]) -> str:
    joined = "\n".join(f"{name}={r.version}" for name, r in sorted(resources.items()))
    return _digest(joined.encode())
