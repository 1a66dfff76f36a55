"""An analyzer: Istio's name for it, the kinds it reads, and the function that reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from heddle.analyze.context import AnalysisInput
from heddle.analyze.messages import Message, MessageType
from heddle.api.resource import Resource
from heddle.api.yaml_documents import PathKey

GroupKind = tuple[str, str]


@dataclass(frozen=True)
class Analyzer:
    name: str  # as Istio names it (`virtualservice.DestinationRuleAnalyzer`)
    description: str
    inputs: frozenset[GroupKind]  # the kinds it reads, as upstream's metadata declares
    run: Callable[[AnalysisInput], Iterable[Message]]


def report(type_: MessageType, resource: Resource[Any], text: str, fix: str,
           path: PathKey = ()) -> Message:
    """A message about `resource` (at `path` in it, when about one field)."""
    return Message(type_, resource.key.ref, text, fix, resource.source, path)
