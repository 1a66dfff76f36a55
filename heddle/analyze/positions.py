"""Messages placed at the line of the field they are about: the analyzers know the field's
path in the resource; its file is read again for the path's line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from heddle.analyze.messages import Message
from heddle.api.files import UnreadableConfig, read_config_text
from heddle.api.yaml_documents import PathKey, YamlDocument, iter_documents

_Place = tuple[YamlDocument, PathKey]


def _documents(file: str) -> dict[tuple[int, int], _Place]:
    """Each object of the file (a `kind: List` holds several) by where it starts."""
    try:
        text = read_config_text(Path(file))
    except (OSError, UnreadableConfig):
        return {}
    found: dict[tuple[int, int], _Place] = {}
    for doc in iter_documents(text, file):
        if not isinstance(doc, YamlDocument):
            continue
        places: list[PathKey] = [()]
        if isinstance(doc.body, dict) and doc.body.get("kind") == "List":
            places = [("items", i) for i in range(len(doc.body.get("items") or []))]
        for prefix in places:
            start = doc.position(prefix)
            found[(start.line, start.column)] = (doc, prefix)
    return found


def locate(messages: Iterable[Message]) -> list[Message]:
    files: dict[str, dict[tuple[int, int], _Place]] = {}
    placed = []
    for message in messages:
        where = message.position
        if where is None or not message.path:
            placed.append(message)
            continue
        if where.file not in files:
            files[where.file] = _documents(where.file)
        place = files[where.file].get((where.line, where.column))
        if place is None:
            placed.append(message)
            continue
        doc, prefix = place
        placed.append(replace(message, position=doc.position((*prefix, *message.path))))
    return placed
