"""How the applied state is laid out on disk, for the light readers of it (the CLI's
`heddle get` says where a resource came from): heddle.config.applied writes it."""

from __future__ import annotations

import re
from pathlib import Path

APPLIED_LAYER = 1  # the store layer of applied resources, over the watched directory (0)
RESOURCES = "resources"  # the folder of applied resources, in the applied state's folder
DELETED = "deleted.json"  # the keys deleted that the directory defines
# `heddle get -o yaml` names each resource's source in this annotation; applying that output
# again must not make it differ from the definition it came from.
SOURCE_ANNOTATION = "heddle.dev/source"

_HEADER = re.compile(r"^# applied from (.*) at (\S+) by `heddle apply`")


def header(origin: str, at: str) -> str:
    """The first line of an applied resource's file."""
    return (f"# applied from {origin} at {at} by `heddle apply`; Heddle keeps it here, over "
            "the watched directory\n")


def applied_from(path: Path) -> str:
    """Where the applied resource in state file `path` was applied from ("" if unknown)."""
    try:
        with path.open() as file:
            found = _HEADER.match(file.readline())
    except OSError:
        return ""
    return found.group(1) if found else ""
