"""Which limit applies to a request's descriptors, as envoyproxy/ratelimit decides it.

A descriptor's entries walk the domain's tree one level each: an exact `key_value` first,
then the level's wildcards in the order written, then the bare `key` (the default for any
value). A limit applies only where the walk ends on the descriptor's last entry; a shorter
or longer path matches nothing. Then, across the request's descriptors, a limit whose
`name` another matched limit `replaces` is dropped, and an `unlimited` one is never counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from heddle.ratelimit.model import DescriptorNode, RateLimit, RateLimitConfig
from heddle.ratelimit.units import Unit

Entry = tuple[str, str]  # a descriptor entry: (key, value)


@dataclass(frozen=True)
class Override:
    """A limit sent in the request (`RateLimitDescriptor.limit`), which wins over config."""

    requests_per_unit: int
    unit: Unit


@dataclass(frozen=True)
class Match:
    """The limit a descriptor matched, with what counting and metrics need of the walk."""

    limit: RateLimit
    stat_key: str  # the metric's descriptor path, "domain.key_value.subkey"
    # Per entry, the wildcard value whose matches all share one counter (share_threshold),
    # or "" to count the entry's own value.
    shared_values: tuple[str, ...] = ()


def find_limit(config: RateLimitConfig, domain: str, entries: Sequence[Entry],
               override: Override | None = None) -> Match | None:
    """The limit `entries` fall under in `domain`, or None."""
    root = config.domains.get(domain)
    if root is None:
        return None
    if override is not None:
        key = domain + "." + ".".join(f"{k}_{v}" if v else k for k, v in entries)
        return Match(RateLimit(override.requests_per_unit, override.unit, key), key)
    level, found = root, None
    metric_parts = [domain]
    shared: list[str] = [""] * len(entries)
    for index, (key, value) in enumerate(entries):
        final_key = f"{key}_{value}"
        node = level.children.get(final_key)
        via_value, via_wildcard = node is not None, ""
        if node is None:
            for wildcard in level.wildcards:
                if wildcard.matches(final_key):
                    node, via_wildcard = level.children[wildcard.final_key], wildcard.final_key
                    break
        if node is None:
            node = level.children.get(key)
        if node is None:
            metric_parts.append(key)
            break
        if via_wildcard and node.share_threshold:
            shared[index] = node.wildcard_value
        metric_parts.append(_metric_part(key, value, node, via_value, via_wildcard, shared[index]))
        if node.limit is not None and index == len(entries) - 1:
            found = node.limit
        if not node.children:
            break
        level = node
    if found is None:
        return None
    shared_values = tuple(shared) if any(shared) else ()
    if found.detailed_metric:
        stat_key = domain + "." + ".".join(
            f"{k}_{shared[i] or v}" if (shared[i] or v) else k
            for i, (k, v) in enumerate(entries))
    else:
        stat_key = ".".join(metric_parts)
    return Match(found, stat_key, shared_values)


def _metric_part(key: str, value: str, node: DescriptorNode, via_value: bool,
                 via_wildcard: str, shared: str) -> str:
    """One level of the metric path: the config's spelling (the pattern of a wildcard, no
    value for a default), or the request's value where `value_to_metric` asks for it."""
    if via_wildcard:
        shown = shared or (value if node.value_to_metric
                           else via_wildcard.removeprefix(key + "_"))
    elif via_value or node.value_to_metric:
        shown = value
    else:
        shown = ""
    return f"{key}_{shown}" if shown else key


@dataclass(frozen=True)
class Applied:
    """What the request's descriptors resolve to: per descriptor, the match to count (None
    when nothing applies, or it was replaced) and whether it is unlimited."""

    matches: tuple[Match | None, ...]
    unlimited: tuple[bool, ...]


def limits_to_check(matches: Sequence[Match | None]) -> Applied:
    """Drop what another matched limit `replaces`, and set `unlimited` ones aside."""
    replaced = {name for m in matches if m is not None for name in m.limit.replaces}
    counted: list[Match | None] = []
    unlimited: list[bool] = []
    for match in matches:
        is_unlimited = match is not None and match.limit.unlimited
        unlimited.append(is_unlimited)
        if match is None or is_unlimited or (match.limit.name and match.limit.name in replaced):
            counted.append(None)
        else:
            counted.append(match)
    return Applied(tuple(counted), tuple(unlimited))
