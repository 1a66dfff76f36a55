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


# Config is untrusted input: aliases let a few hundred bytes stand for billions of nodes
# (the "billion laughs"), so what aliases may add to a file is bounded, as Kubernetes'
# YAML decoding bounds it, and so are nesting and size.
MAX_ALIAS_NODES = 10_000  # nodes a file's aliases (*name) may repeat, all together
MAX_DEPTH = 100  # nested mappings and sequences


class YamlLimitExceeded(ValueError):
    """A document would expand beyond a limit; `path` is where it was exceeded."""

    def __init__(self, message: str, fix: str, path: PathKey) -> None:
        super().__init__(message)
        self.fix = fix
        self.path = path


class _Flattener:
    """Turns ruamel's round-trip nodes into plain data, recording each node's position.

    ruamel shares one object for an anchor and all its aliases; expanding them is where the
    cost is, so every visit to an object seen before counts against the budget of the whole
    file (one flattener per file; `positions` is started afresh for each document).
    """

    def __init__(self) -> None:
        self.positions: dict[PathKey, tuple[int, int]] = {}
        self.seen: set[int] = set()
        self.alias_nodes = 0

    def plain(self, node: Any, path: PathKey = (), aliased: bool = False,
              ancestors: frozenset[int] = frozenset()) -> Any:
        if not isinstance(node, CommentedMap | CommentedSeq):
            if aliased:
                self._count_alias(path)
            return _scalar(node)
        identity = id(node)
        if identity in ancestors:
            raise YamlLimitExceeded(
                "an alias refers to a node that contains it (a recursive structure)",
                "an alias (*name) may only repeat a node defined before and outside it", path)
        if len(path) >= MAX_DEPTH:
            raise YamlLimitExceeded(f"nested deeper than {MAX_DEPTH} levels",
                                    "flatten the structure", path)
        aliased = aliased or identity in self.seen
        if aliased:
            self._count_alias(path)
        self.seen.add(identity)
        inside = ancestors | {identity}
        if isinstance(node, CommentedMap):
            out: dict[Any, Any] = {}
            for key, value in node.items():
                child = (*path, str(key))
                self._remember(child, node.lc.key, key)
                out[key if isinstance(key, str) else str(key)] = self.plain(
                    value, child, aliased, inside)
            return out
        items: list[Any] = []
        for i, value in enumerate(node):
            child = (*path, i)
            self._remember(child, node.lc.item, i)
            items.append(self.plain(value, child, aliased, inside))
        return items

    def _count_alias(self, path: PathKey) -> None:
        self.alias_nodes += 1
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise YamlLimitExceeded(
                f"aliases expand to more than {MAX_ALIAS_NODES} nodes",
                "write the repeated parts out, or repeat fewer or smaller anchors", path)

    def _remember(self, path: PathKey, where: Any, key: Any) -> None:
        try:
            line, col = where(key)
        except (KeyError, TypeError, IndexError):
            return
        self.positions[path] = (line + 1, col + 1)


def _scalar(node: Any) -> Any:
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
    flattener = _Flattener()
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
        except RecursionError:
            return documents, [Diagnostic(
                Severity.ERROR, "YAML error: nested too deeply to read",
                SourcePosition(file, 1, 1), fix=f"nest at most {MAX_DEPTH} levels")]
        except Exception as err:  # ruamel raises a few unmarked errors (duplicate keys, ...)
            return documents, [
                Diagnostic(Severity.ERROR, f"YAML error: {err}", SourcePosition(file, 1, 1))
            ]
        if node is None:
            index += 1
            continue
        flattener.positions, flattener.seen = {}, set()  # anchors end with their document
        if isinstance(node, CommentedMap | CommentedSeq):
            flattener.positions[()] = node.lc.line + 1, node.lc.col + 1
        try:
            body = flattener.plain(node)
        except YamlLimitExceeded as err:
            where = YamlDocument(None, file, index, flattener.positions).position(err.path)
            return documents, [Diagnostic(Severity.ERROR, f"YAML refused: {err}", where,
                                          fix=err.fix)]
        documents.append(YamlDocument(body, file, index, flattener.positions))
        index += 1
