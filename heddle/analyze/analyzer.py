"""An analyzer: Istio's name for it, the kinds it reads, and the function that reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from heddle.analyze.context import AnalysisInput
from heddle.analyze.messages import Message, MessageType
from heddle.api.resource import Resource

GroupKind = tuple[str, str]


@dataclass(frozen=True)
class Analyzer:
    name: str  # as Istio names it (`virtualservice.DestinationRuleAnalyzer`)
    description: str
    inputs: frozenset[GroupKind]  # the kinds it reads, as upstream's metadata declares
    run: Callable[[AnalysisInput], Iterable[Message]]


def report(type_: MessageType, resource: Resource[Any], text: str, fix: str) -> Message:
    return Message(type_, resource.key.ref, text, fix, resource.source)
