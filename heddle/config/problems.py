"""What is wrong with the configuration now, file by file, and which files were fixed lately.

A pure model: the ConfigStore works out the problems in force after every change (each
file's load errors and warnings, resources defined twice, applied resources overriding the
directory) and keeps a `ProblemHistory`, which says what appeared and which files were fixed
since the last change. The debug API serves it as JSON; `heddle status`, `heddle get` and
the control-plane log show it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from heddle.api.diagnostics import Diagnostic, Severity

SHOWN = (Severity.ERROR, Severity.WARNING)  # info (kinds kept, unused) is not a problem


@dataclass(frozen=True)
class FileProblems:
    """One file's problems. `rejected`: its current content was refused (it has errors),
    so its last good version (or nothing, for a file never good) is in force."""

    file: str
    problems: tuple[Diagnostic, ...]
    rejected: bool = False

    @property
    def errors(self) -> int:
        return sum(1 for d in self.problems if d.is_error)

    @property
    def warnings(self) -> int:
        return len(self.problems) - self.errors

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "rejected": self.rejected,
                "problems": [problem_json(d) for d in self.problems]}


@dataclass(frozen=True)
class FixedFile:
    """A file whose problems all went away at `at`: fixed, or `removed` with its file."""

    file: str
    at: datetime.datetime
    was: tuple[str, ...]  # the problems it had, as text
    removed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "at": _iso(self.at), "was": list(self.was),
                "removed": self.removed}


@dataclass(frozen=True)
class ConfigProblems:
    """The problems in force, by file (sorted), and the files fixed lately (newest first)."""

    files: tuple[FileProblems, ...] = ()
    fixed: tuple[FixedFile, ...] = ()

    def of(self, file: str) -> FileProblems | None:
        return next((f for f in self.files if f.file == file), None)

    def rejected(self) -> dict[str, Diagnostic]:
        """File -> its first error, for every file whose last edit was refused."""
        return {f.file: next(d for d in f.problems if d.is_error)
                for f in self.files if f.rejected and f.errors}

    def including(self, diagnostics: Iterable[Diagnostic]) -> ConfigProblems:
        """These problems and more found elsewhere (the mesh config's), by their file."""
        extra = group_by_file(diagnostics)
        if not extra:
            return self
        merged = {f.file: f for f in self.files}
        for file, found in extra.items():
            old = merged.get(file)
            merged[file] = FileProblems(file, (*(old.problems if old else ()), *found),
                                        old.rejected if old else False)
        return ConfigProblems(tuple(merged[k] for k in sorted(merged)), self.fixed)

    def to_json(self) -> dict[str, Any]:
        return {"files": [f.to_json() for f in self.files],
                "fixed": [f.to_json() for f in self.fixed],
                "errors": sum(f.errors for f in self.files),
                "warnings": sum(f.warnings for f in self.files)}


def problem_json(diagnostic: Diagnostic) -> dict[str, Any]:
    where = diagnostic.position
    return {"severity": str(diagnostic.severity),
            "line": where.line if where else 0, "column": where.column if where else 0,
            "resource": str(diagnostic.resource or ""), "message": diagnostic.message,
            "fix": diagnostic.fix, "code": diagnostic.code, "text": str(diagnostic)}


def _iso(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def group_by_file(diagnostics: Iterable[Diagnostic],
                  default: str = "") -> dict[str, list[Diagnostic]]:
    """Errors and warnings by the file they point at (`default` for those that name none),
    each file's sorted by line."""
    found: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        if d.severity in SHOWN:
            found.setdefault(d.position.file if d.position else default, []).append(d)
    for problems in found.values():
        problems.sort(key=lambda d: (d.position.line, d.position.column) if d.position
                      else (0, 0))
    return found


@dataclass(frozen=True)
class ProblemChange:
    """What one update brought: problems not in force before, and files now clean."""

    appeared: tuple[Diagnostic, ...] = ()
    fixed: tuple[FixedFile, ...] = ()


@dataclass
class ProblemHistory:
    """The last problems in force and the files fixed lately: a fixed file is listed for
    `keep_fixed` seconds (at most `max_fixed` of them), or until it has problems again."""

    keep_fixed: float = 600.0
    max_fixed: int = 20
    current: ConfigProblems = field(default_factory=ConfigProblems)

    def update(self, files: Iterable[FileProblems], present: set[str],
               now: datetime.datetime) -> ProblemChange:
        """Take the problems now in force; `present`: the files the store holds."""
        before = {f.file: f for f in self.current.files}
        after = {f.file: f for f in files if f.problems}
        seen = {str(d) for f in before.values() for d in f.problems}
        appeared = tuple(d for f in after.values() for d in f.problems if str(d) not in seen)
        fixed = tuple(FixedFile(name, now, tuple(str(d) for d in old.problems),
                                removed=name not in present)
                      for name, old in sorted(before.items()) if name not in after)
        horizon = now - datetime.timedelta(seconds=self.keep_fixed)
        kept = [f for f in self.current.fixed
                if f.at >= horizon and f.file not in after and f.file not in before]
        self.current = ConfigProblems(tuple(after[k] for k in sorted(after)),
                                      (*fixed, *kept)[:self.max_fixed])
        return ProblemChange(appeared, fixed)
