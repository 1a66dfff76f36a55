"""Manifests as YAML, the same bytes for the same input."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any


def manifests_yaml(manifests: Iterable[dict[str, Any]]) -> str:
    """A YAML stream of `manifests` (YAML 1.2, as Heddle's loader reads it back), keys in the
    order written."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096  # a long value (a regex, a reason) stays on its line
    yaml.explicit_start = True
    out = io.StringIO()
    yaml.dump_all(list(manifests), out)
    return out.getvalue()
