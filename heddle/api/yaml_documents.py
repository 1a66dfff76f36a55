"""Reading YAML streams into plain data while remembering where every node came from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from heddle.api.diagnostics import Diagnostic, Severity, SourcePosition

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    """One document of a YAML stream as plain Python data plus node positions."""

    body: Any
    file: str
    index: int
    positions: dict[PathKey, tuple[int, int]] = field(repr=False, compare=False)

    def position(self, path: PathKey = ()) -> SourcePosition:
        """The closest known position of `path`: the node itself or its nearest parent."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return SourcePosition(self.file, found[0], found[1])
        return SourcePosition(self.file, 1, 1)


def _plain(node: Any, path: PathKey, positions: dict[PathKey, tuple[int, int]]) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            child = (*path, str(key))
            try:
                line, col = node.lc.key(key)
                positions[child] = (line + 1, col + 1)
            except (KeyError, TypeError):
                pass
            out[str(key) if not isinstance(key, str) else key] = _plain(value, child, positions)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for i, value in enumerate(node):
            child = (*path, i)
            try:
                line, col = node.lc.item(i)
                positions[child] = (line + 1, col + 1)
            except (KeyError, TypeError, IndexError):
                pass
            items.append(_plain(value, child, positions))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def read_documents(text: str, file: str) -> tuple[list[YamlDocument], list[Diagnostic]]:
    """Split a YAML stream into documents; a syntax error ends the stream with a diagnostic."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    documents: list[YamlDocument] = []
    stream: Iterator[Any] = iter(yaml.load_all(text))
    index = 0
    while True:
        try:
            node = next(stream)
        except StopIteration:
            return documents, []
        except MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = err.problem or str(err)
            return documents, [
                Diagnostic(
                    Severity.ERROR,
                    f"YAML syntax error: {problem}"
                    + (f" ({err.context})" if err.context else ""),
                    position=SourcePosition(file, line, col),
                    fix="fix the YAML syntax at this position (indentation, quotes, ':' spacing)",
                )
            ]
        except Exception as err:  # ruamel raises a few unmarked errors (duplicate keys, ...)
            return documents, [
                Diagnostic(Severity.ERROR, f"YAML error: {err}", SourcePosition(file, 1, 1))
            ]
        if node is None:
            index += 1
            continue
        positions: dict[PathKey, tuple[int, int]] = {}
        if isinstance(node, CommentedMap | CommentedSeq):
            start = node.lc.line + 1, node.lc.col + 1
            positions[()] = start
        body = _plain(node, (), positions)
        documents.append(YamlDocument(body, file, index, positions))
        index += 1
