"""The configuration's problems as the CLI shows them: `heddle status`'s "configuration"
section and `heddle get`'s marks, from the control plane's `/debug/problems` JSON
(heddle.config.problems.ConfigProblems.to_json). Light: the standard library only."""

from __future__ import annotations

import calendar
import time
from pathlib import Path
from typing import Any


def shown_path(file: str) -> str:
    """A file as the user typed it, near enough: relative when under the current folder."""
    try:
        return str(Path(file).relative_to(Path.cwd()))
    except ValueError:
        return file


def _text(problem: dict[str, Any], file: str) -> str:
    text = str(problem.get("text", ""))
    return shown_path(file) + text[len(file):] if file and text.startswith(file) else text


def _ago(at: str, now: float) -> str:
    try:
        then = calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return ""
    seconds = max(0, int(now - then))
    if seconds < 120:
        return f"{seconds}s ago"
    return f"{seconds // 60}m ago" if seconds < 7200 else f"{seconds // 3600}h ago"


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def section(problems: dict[str, Any] | None, now: float | None = None) -> list[str]:
    """`heddle status`'s configuration section: each file's errors and warnings (file:line),
    whether its last edit was refused, and the files fixed lately."""
    if problems is None:
        return ["configuration: unknown (the control plane is not answering)"]
    now = time.time() if now is None else now
    files: list[dict[str, Any]] = problems.get("files", [])
    errors, warnings = int(problems.get("errors", 0)), int(problems.get("warnings", 0))
    lines = [f"configuration: {_count(errors, 'error')}, {_count(warnings, 'warning')}"
             if files else "configuration: no problems"]
    for entry in files:
        file = str(entry["file"])
        if entry.get("rejected"):
            lines.append(f"  {shown_path(file) or '(no file)'}: last edit rejected; its last "
                         "good version stays in force")
        else:
            lines.append(f"  {shown_path(file) or '(no file)'}:")
        lines += [f"    {_text(p, file)}" for p in entry.get("problems", [])]
    for fixed in problems.get("fixed", []):
        file = str(fixed["file"])
        what = "removed" if fixed.get("removed") else "fixed"
        gone = _count(len(fixed.get("was", [])), "problem")
        lines.append(f"  {what} {_ago(str(fixed.get('at', '')), now)}: {shown_path(file)} "
                     f"({gone} gone)")
    return lines


def rejected_note(file: str, error: str) -> str:
    """`heddle get`'s line (on stderr) for the resources of a file whose last edit was
    refused."""
    first = error[len(file):] if error.startswith(file) else f": {error}"
    return (f"warning: the last edit of {shown_path(file)} was rejected, so its resources "
            f"above are its last good version; first error: {shown_path(file)}{first} (see "
            "`heddle status`)")
