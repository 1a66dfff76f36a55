"""What a conversion says about its input: each part it could not carry over, and why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from heddle.api.diagnostics import ResourceRef, SourcePosition


class Verdict(StrEnum):
    NOT_CONVERTED = "not converted"  # the output lacks what the input asked for
    IGNORED = "ignored"  # the source controller ignores it too, so nothing is lost
    NOTE = "note"  # converted, with a difference the user should know about


@dataclass(frozen=True, order=True)
class Finding:
    position: SourcePosition
    resource: ResourceRef
    subject: str  # an annotation with its value, or a field such as spec.tls[0]
    verdict: Verdict
    reason: str

    def __str__(self) -> str:
        return f"{self.position}: {self.resource}: {self.verdict}: {self.subject}: {self.reason}"
