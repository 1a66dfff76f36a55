"""A problem found at a field path of one resource, before it is placed in a file."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from heddle.api.diagnostics import Severity

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldProblem:
    path: PathKey
    message: str
    fix: str = ""
    severity: Severity = Severity.ERROR
    code: str = ""


def format_path(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`did you mean "weight"?` when a close match exists, else a list of the choices."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        lowered = {o.lower(): o for o in options}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    if close:
        return f'did you mean "{close[0]}"?'
    if options and len(options) <= 12:
        return "expected one of: " + ", ".join(options)
    return ""
