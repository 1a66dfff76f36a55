"""What a change to the store looks like to its subscribers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from heddle.api.diagnostics import Diagnostic
from heddle.api.resource import ResourceKey
from heddle.config.problems import ProblemChange


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
    """One batch of changes: the store version it produced, what changed, the problems
    found in the file that was read (a file that failed keeps its last good resources), and
    how the problems in force changed (new ones anywhere, files fixed)."""

    version: int
    source: str
    changes: tuple[ResourceChange, ...]
    diagnostics: tuple[Diagnostic, ...]
    problems: ProblemChange = field(default_factory=ProblemChange)
