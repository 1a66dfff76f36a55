"""The typed descriptor tree that envoyproxy/ratelimit's YAML loads into.

A domain is the root of a tree of descriptors; each node is found by its "final key": the
descriptor's `key`, or `key_value` when it names a value. Values that contain `*` are
wildcards, tried in the order they were written when no exact `key_value` matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from heddle.api.diagnostics import SourcePosition
from heddle.ratelimit.units import Unit


@dataclass(frozen=True)
class RateLimit:
    """One limit: `requests_per_unit` per `unit` (None only when `unlimited`)."""

    requests_per_unit: int
    unit: Unit | None
    stat_key: str  # "domain.key_value.subkey": the metric's descriptor path
    name: str = ""
    replaces: tuple[str, ...] = ()
    unlimited: bool = False
    shadow_mode: bool = False
    quota_mode: bool = False
    detailed_metric: bool = False


@dataclass(frozen=True)
class Wildcard:
    """A wildcard final key (`key_foo*`, `key_a*b`) split on `*` once, at load time."""

    final_key: str
    parts: tuple[str, ...]

    def matches(self, final_key: str) -> bool:
        """Each `*` stands for any run of characters (possibly none), as upstream's."""
        parts = self.parts
        first, last = parts[0], parts[-1]
        if not final_key.startswith(first) or not final_key.endswith(last):
            return False
        if len(final_key) < sum(len(p) for p in parts):
            return False
        middle = final_key[len(first):len(final_key) - len(last)]
        for part in parts[1:-1]:
            found = middle.find(part)
            if found < 0:
                return False
            middle = middle[found + len(part):]
        return True


@dataclass
class DescriptorNode:
    """A level of the tree: its limit (if any) and the descriptors nested under it."""

    limit: RateLimit | None = None
    children: dict[str, DescriptorNode] = field(default_factory=dict)
    wildcards: list[Wildcard] = field(default_factory=list)
    value_to_metric: bool = False
    share_threshold: bool = False
    wildcard_value: str = ""  # the `value` pattern of a share_threshold wildcard
    position: SourcePosition | None = None


@dataclass(frozen=True)
class RateLimitConfig:
    """Every domain's tree, as loaded from one directory."""

    domains: dict[str, DescriptorNode] = field(default_factory=dict)
    files: tuple[str, ...] = ()
