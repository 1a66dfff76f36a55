"""Reading YAML streams into plain data while remembering where every node came from.

libyaml (PyYAML's C parser) composes the node graph, which keeps each node's line and
column; turning nodes into data is done here, so that aliases can be bounded and scalars
read by the YAML 1.2 core schema."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from yaml import MarkedYAMLError
from yaml._yaml import CParser
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from heddle.api.diagnostics import Diagnostic, Severity, SourcePosition
from heddle.api.yaml_scalars import MERGE, CoreSchemaResolver, key_text, scalar_value

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


class DuplicateKey(ValueError):
    def __init__(self, key: str, path: PathKey) -> None:
        super().__init__(f'duplicate key "{key}"')
        self.path = path


class _Composer(CParser, CoreSchemaResolver):
    def __init__(self, text: str) -> None:
        CParser.__init__(self, text)
        CoreSchemaResolver.__init__(self)


class _Flattener:
    """Turns composed nodes into plain data, recording each node's position.

    The composer makes one node for an anchor and all its aliases; expanding them is where
    the cost is, so every visit to a node seen before counts against the budget of the whole
    file (one flattener per file; `positions` and `seen` start afresh for each document).
    """

    def __init__(self) -> None:
        self.positions: dict[PathKey, tuple[int, int]] = {}
        self.seen: set[int] = set()
        self.alias_nodes = 0

    def plain(self, node: Node, path: PathKey = (), aliased: bool = False,
              ancestors: frozenset[int] = frozenset()) -> Any:
        identity = id(node)
        if identity in ancestors:
            raise YamlLimitExceeded(
                "an alias refers to a node that contains it (a recursive structure)",
                "an alias (*name) may only repeat a node defined before and outside it", path)
        aliased = aliased or identity in self.seen
        if aliased:
            self._count_alias(path)
        if isinstance(node, ScalarNode):
            return scalar_value(node)
        if len(path) >= MAX_DEPTH:
            raise YamlLimitExceeded(f"nested deeper than {MAX_DEPTH} levels",
                                    "flatten the structure", path)
        self.seen.add(identity)
        inside = ancestors | {identity}
        if isinstance(node, SequenceNode):
            items: list[Any] = []
            for i, item in enumerate(node.value):
                child = (*path, i)
                self._remember(child, item)
                items.append(self.plain(item, child, aliased, inside))
            return items
        assert isinstance(node, MappingNode)
        out: dict[str, Any] = {}
        for key_node, value_node in self._pairs(node, path, inside):
            key = key_text(self.plain(key_node, path, aliased, inside))
            child = (*path, key)
            self._remember(child, key_node)
            if key in out:
                raise DuplicateKey(key, child)
            out[key] = self.plain(value_node, child, aliased, inside)
        return out

    def _pairs(self, node: MappingNode, path: PathKey,
               inside: frozenset[int]) -> list[tuple[Node, Node]]:
        """The mapping's own pairs, then those its merge keys (`<<: *base`) add: a key
        written in the mapping, or merged earlier, wins."""
        own = [(k, v) for k, v in node.value if k.tag != MERGE]
        merged: list[tuple[Node, Node]] = []
        for _, value in (p for p in node.value if p[0].tag == MERGE):
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise YamlLimitExceeded(
                        "a merge key (<<) must name a mapping or a list of mappings",
                        "merge only mappings: `<<: *anchor` or `<<: [*a, *b]`", path)
                if id(source) in inside:
                    raise YamlLimitExceeded(
                        "a merge key (<<) names the mapping that contains it",
                        "merge only mappings defined before and outside this one", path)
                # Merging repeats the source's pairs: they count against the alias budget,
                # or `<<: [*a, *a, ...]` chains would multiply the work without bound.
                pairs = self._pairs(source, path, inside | {id(source)})
                self._count_alias(path, len(pairs))
                merged += pairs
        written = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        taken: set[str] = set()
        for key, value in merged:
            if key.value not in written and key.value not in taken:
                taken.add(key.value)
                own.append((key, value))
        return own

    def _count_alias(self, path: PathKey, nodes: int = 1) -> None:
        self.alias_nodes += nodes
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise YamlLimitExceeded(
                f"aliases expand to more than {MAX_ALIAS_NODES} nodes",
                "write the repeated parts out, or repeat fewer or smaller anchors", path)

    def _remember(self, path: PathKey, node: Node) -> None:
        self.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)


def _syntax_error(err: MarkedYAMLError, file: str) -> Diagnostic:
    mark = err.problem_mark or err.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return Diagnostic(
        Severity.ERROR,
        f"YAML syntax error: {err.problem or err}" + (f" ({err.context})" if err.context else ""),
        position=SourcePosition(file, line, col),
        fix="fix the YAML syntax at this position (indentation, quotes, ':' spacing)")


def read_documents(text: str, file: str) -> tuple[list[YamlDocument], list[Diagnostic]]:
    """Split a YAML stream into documents; an error ends the stream with a diagnostic."""
    documents: list[YamlDocument] = []
    for item in iter_documents(text, file):
        if isinstance(item, Diagnostic):
            return documents, [item]
        documents.append(item)
    return documents, []


def iter_documents(text: str, file: str) -> Iterator[YamlDocument | Diagnostic]:
    """The documents of a YAML stream one at a time (libyaml parses as far as it is asked),
    so a caller can pause between them; an error is the last item."""
    composer = _Composer(text)
    flattener = _Flattener()
    index = 0
    try:
        while composer.check_node():
            node = composer.get_node()
            flattener.positions, flattener.seen = {}, set()  # anchors end with their document
            if node is None or (isinstance(node, ScalarNode) and scalar_value(node) is None):
                index += 1
                continue
            flattener.positions[()] = node.start_mark.line + 1, node.start_mark.column + 1
            try:
                body = flattener.plain(node)
            except (YamlLimitExceeded, DuplicateKey) as err:
                where = YamlDocument(None, file, index, flattener.positions).position(err.path)
                if isinstance(err, DuplicateKey):
                    yield Diagnostic(Severity.ERROR, f"YAML error: {err}", where,
                                     fix="write each key once in a mapping")
                else:
                    yield Diagnostic(Severity.ERROR, f"YAML refused: {err}", where, fix=err.fix)
                return
            yield YamlDocument(body, file, index, flattener.positions)
            index += 1
    except MarkedYAMLError as err:
        yield _syntax_error(err, file)
    finally:
        composer.dispose()
