"""Which limit a bucket falls under: a bucket id names the rule it counts for
(`heddle.rule`), and the rule's branch of the domain's descriptor tree (the RLS's own
config, written from the same policies) ends in its limit. The other entries (where, which
client) only tell buckets of one rule apart: each bucket has the whole limit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from heddle.ratelimit.model import DescriptorNode, RateLimitConfig

RULE_KEY = "heddle.rule"  # as heddle.translate.rate_limits names the rule in descriptors


@dataclass(frozen=True)
class BucketLimit:
    requests: int
    window_seconds: int
    shadow: bool = False  # counted, never refused
    unlimited: bool = False


def bucket_key(domain: str, bucket: Mapping[str, str]) -> str:
    """One name for a bucket, the same on every replica (a bucket id is an unordered map)."""
    return domain + "|" + "|".join(f"{k}={bucket[k]}" for k in sorted(bucket))


def limit_of(config: RateLimitConfig, domain: str,
             bucket: Mapping[str, str]) -> BucketLimit | None:
    """The limit of the rule the bucket names, or None (no such rule, or no rule named)."""
    root = config.domains.get(domain)
    rule = bucket.get(RULE_KEY)
    if root is None or rule is None:
        return None
    node: DescriptorNode | None = root.children.get(f"{RULE_KEY}_{rule}")
    # A rule's branch is a chain (one node per descriptor entry): its limit is at the end.
    for _ in range(64):
        if node is None or node.limit is not None or len(node.children) != 1:
            break
        node = next(iter(node.children.values()))
    if node is None or node.limit is None:
        return None
    limit = node.limit
    if limit.unlimited or limit.unit is None:
        return BucketLimit(0, 1, unlimited=True)
    return BucketLimit(limit.requests_per_unit, limit.unit.seconds, limit.shadow_mode)
