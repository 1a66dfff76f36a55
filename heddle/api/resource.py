"""A validated resource: its identity, metadata, typed spec and where it was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from heddle.api.diagnostics import ResourceRef, SourcePosition

SpecT = TypeVar("SpecT", bound=BaseModel)

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True, order=True)
class ResourceKey:
    """What makes a resource unique in the store: group, kind, namespace and name."""

    group: str
    kind: str
    namespace: str
    name: str

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str
    labels: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    annotations: MappingProxyType[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True)
class Resource(Generic[SpecT]):
    """A resource Heddle uses. `body` is the document as written, for writing back out."""

    api_version: str
    key: ResourceKey
    metadata: ObjectMeta
    spec: SpecT
    source: SourcePosition | None = field(default=None, compare=False)
    body: MappingProxyType[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )

    @property
    def kind(self) -> str:
        return self.key.kind

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def namespace(self) -> str:
        return self.key.namespace


@dataclass(frozen=True)
class UnmanagedObject:
    """A document of a kind Heddle does not use (Deployment, ServiceAccount, ...): kept as is."""

    api_version: str
    kind: str
    namespace: str
    name: str
    source: SourcePosition | None = field(default=None, compare=False)
    body: MappingProxyType[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )
