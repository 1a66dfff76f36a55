"""Problems found in user configuration, each saying what, where and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, order=True)
class SourcePosition:
    """A place in a YAML file; line and column count from 1."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, order=True)
class ResourceRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else (
            f"{self.kind} {self.name}"
        )


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    message: str
    position: SourcePosition | None = None
    resource: ResourceRef | None = None
    field: str = ""
    fix: str = ""
    code: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        parts = [f"{self.position}: " if self.position else "", f"{self.severity}: "]
        if self.code:
            parts.append(f"[{self.code}] ")
        if self.resource:
            parts.append(f"{self.resource}: ")
        if self.field:
            parts.append(f"{self.field}: ")
        parts.append(self.message)
        if self.fix:
            parts.append(f" ({self.fix})")
        return "".join(parts)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)
