"""Finding and reading configuration files, with the limits untrusted input needs.

Light on purpose (no schemas, no models): the CLI reads files here before it hands them to
a running control plane, which validates them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from heddle.api.diagnostics import Diagnostic, Severity, SourcePosition

YAML_SUFFIXES = (".yaml", ".yml")
# Config is untrusted input: a file is read only up to this size (Kubernetes refuses requests
# over 3 MiB; no real resource file comes near).
MAX_FILE_BYTES = 4 * 1024 * 1024


def yaml_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named, and every YAML file under the directories named, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return found


class UnreadableConfig(Exception):
    """A config file that exists but cannot be taken in; `diagnostic` says why."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


def read_config_text(path: Path) -> str:
    """The text of a config file, read no further than MAX_FILE_BYTES. A file that is gone
    raises FileNotFoundError (or Is/NotADirectoryError); any other failure UnreadableConfig."""
    here = SourcePosition(str(path), 1, 1)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise
    except OSError as err:
        raise UnreadableConfig(Diagnostic(
            Severity.ERROR, f"cannot read {path}: {err.strerror}", here,
            fix="check the path and its permissions")) from err
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableConfig(Diagnostic(
            Severity.ERROR, f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", here,
            fix="split it into smaller files"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnreadableConfig(Diagnostic(
            Severity.ERROR, f"{path} is not UTF-8 text (byte {err.start})", here,
            fix="save the file as UTF-8")) from err
