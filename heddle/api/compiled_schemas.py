"""A compiled yes/no check of a resource against its schema, for the common case: valid.

jsonschema walks the schema for every document; `fastjsonschema` compiles it to Python
once, and is many times faster, but says only the first problem. So the compiled check
answers "valid?" and, only when the answer is no, jsonschema finds every problem and the
messages stay exactly as they were. The compiled check is never more lenient than
jsonschema (it also checks `format`s, and anchors patterns at the very end), so a document
it passes has nothing jsonschema would report.

Compiling a big schema takes a noticeable fraction of a second (DestinationRule: ~0.3 s),
which a CLI checking a few documents would only lose; a schema is compiled once it has
been used COMPILE_AFTER times.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import fastjsonschema

COMPILE_AFTER = 20

_CHARACTER_CLASS = re.compile(r"\[(?:\\.|[^\]\\])*\]")

Check = Callable[[Any], Any]


def _escaped_patterns(node: Any) -> Any:
    """fastjsonschema turns every `$` of a pattern into `\\Z`, also inside a character class,
    where that is an error: write those as `\\x24`, the same character."""
    if isinstance(node, list):
        return [_escaped_patterns(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _escaped_patterns(v) for k, v in node.items()}
    pattern = out.get("pattern")
    if isinstance(pattern, str):
        out["pattern"] = _CHARACTER_CLASS.sub(lambda m: m.group(0).replace("$", r"\x24"),
                                              pattern)
    return out


class CompiledSchemas:
    """Per schema key: how often it was used, and its compiled check once it has one."""

    def __init__(self, compile_after: int = COMPILE_AFTER) -> None:
        self._compile_after = compile_after
        self._uses: dict[tuple[str, ...], int] = {}
        self._checks: dict[tuple[str, ...], Check | None] = {}

    def passes(self, key: tuple[str, ...], schema: Callable[[], dict[str, Any]],
               value: Any) -> bool:
        """True when `value` is certainly valid; False means "ask jsonschema"."""
        check = self._checks.get(key)
        if check is None:
            uses = self._uses[key] = self._uses.get(key, 0) + 1
            if uses < self._compile_after or key in self._checks:
                return False  # not compiled yet, or it could not be
            check = self._compile(key, schema())
            if check is None:
                return False
        try:
            check(value)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def _compile(self, key: tuple[str, ...], schema: dict[str, Any]) -> Check | None:
        try:
            # use_default=False: checking must never fill defaults into the document.
            check: Check | None = fastjsonschema.compile(_escaped_patterns(schema),
                                                         use_default=False)
        except (fastjsonschema.JsonSchemaDefinitionException, re.error):
            check = None  # a schema it cannot compile is always checked by jsonschema
        self._checks[key] = check
        return check
