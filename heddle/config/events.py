"""What a change to the store looks like to its subscribers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from heddle.api.diagnostics import Diagnostic
from heddle.api.resource import ResourceKey


class ChangeType(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True)
class ResourceChange:
    type: ChangeType
    key: ResourceKey


@dataclass(frozen=True)
class StoreEvent:
    """One batch of changes: the store version it produced, what changed, and the problems
    found in the files that were read (a file that failed keeps its last good resources)."""

    version: int
    source: str
    changes: tuple[ResourceChange, ...]
    diagnostics: tuple[Diagnostic, ...]
