"""How a bucket's limit is split among the proxies that lease it, and what a share becomes.

A limit of N requests per window of W seconds is a rate of N/W with a burst of N, as a local
token bucket would enforce it. Each proxy i gets a share s_i of it: its demand (requests it
saw, passed or refused, per second) over the bucket's total demand, each demand raised to at
least FLOOR x the mean first, so that an idle proxy keeps a little quota and is not refused
its first requests while the next report travels. Shares sum to 1.

A share becomes whole tokens: N is split by largest remainder (the tokens sum to exactly N),
and proxy i gets a token bucket refilled by t_i tokens every W seconds. A proxy whose share
rounds to no token is refused (DENY_ALL) until its demand earns it one.

Each proxy's lease is recomputed as it reports, while the others hold what they were given
at their own last reports; so a lease is capped by what the others hold (N less their
tokens), and the leases held never sum to more than N, even while demand shifts (a proxy
whose share grows gets it once the others have reported theirs smaller: conservative for up
to one reporting interval; only a proxy's first lease may pass the cap, by JOIN_SHARE). A
lease within a few percent of the one held is kept as it is, where the cap allows: Envoy
starts a changed token bucket full, so every change is a burst of its capacity. And the
capacity (max_tokens) is the lease's tokens only for a proxy alone on the bucket (its lease
never changes); shared, it is SHARED_BURST of them, so a change or a proxy's first
assignment adds a fifth of its share, not all of it, over the limit. Together the proxies
pass at most N/W x T in T seconds plus the capacities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

FLOOR = 0.1  # an idle proxy's weight, as a fraction of the mean demand
# A lease that would grow by at most GROWTH_KEPT, or shrink by at most SHRINK_KEPT, is kept
# as it is (within the cap): Envoy keeps the tokens of an unchanged token bucket, and refills
# a changed one to full (a burst).
GROWTH_KEPT = 0.25
SHRINK_KEPT = 0.1
# A shared bucket's capacity, as a fraction of its tokens per window: the burst one change
# can add. A proxy alone keeps the whole (a fixed window's N at once).
SHARED_BURST = 0.2
# A proxy's first lease may go past the cap by this much of the limit, so that a proxy that
# joins while the others hold it all is not refused everything until they report (up to one
# reporting interval); over the limit by at most this, per joining proxy, for that long.
JOIN_SHARE = 0.05


def shares(demands: Mapping[str, float], floor: float = FLOOR) -> dict[str, float]:
    """Each lessee's fraction of the limit, from its demand (requests per second)."""
    if not demands:
        return {}
    total = sum(max(0.0, d) for d in demands.values())
    if total <= 0:
        return {lessee: 1 / len(demands) for lessee in demands}
    least = floor * total / len(demands)
    weights = {lessee: max(d, least) for lessee, d in demands.items()}
    weight = sum(weights.values())
    return {lessee: w / weight for lessee, w in weights.items()}


def tokens(requests: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """`requests` split by `fractions` into whole numbers that sum to it (largest remainder;
    ties to the lessee named first in sort order, so every replica splits alike)."""
    exact = {lessee: requests * f for lessee, f in fractions.items()}
    whole = {lessee: math.floor(x) for lessee, x in exact.items()}
    left = requests - sum(whole.values())
    for lessee in sorted(exact, key=lambda k: (whole[k] - exact[k], k))[:max(0, left)]:
        whole[lessee] += 1
    return whole


@dataclass(frozen=True)
class Lease:
    """What one proxy may pass: a token bucket refilled by `tokens` every `window_seconds`,
    holding at most `max_tokens` (0: as many as `tokens`); no token: everything refused."""

    tokens: int
    window_seconds: int
    max_tokens: int = 0

    @property
    def denies(self) -> bool:
        return self.tokens <= 0

    @property
    def capacity(self) -> int:
        return self.max_tokens or self.tokens

    def keeps(self, new: Lease, cap: int | None = None) -> bool:
        """Whether `self`, held now, should stay in place of `new`: one slightly larger is
        not worth a burst, nor one slightly smaller, as long as `self` is within `cap` (what
        the others leave: the leases must never sum to more than the limit)."""
        if new.window_seconds != self.window_seconds or self.denies or new.denies:
            return False
        if cap is not None and self.tokens > cap:
            return False
        if (self.max_tokens == 0) != (new.max_tokens == 0):  # alone <-> shared
            return False
        return self.tokens * (1 - SHRINK_KEPT) <= new.tokens <= self.tokens * (1 + GROWTH_KEPT)


def leases(requests: int, window_seconds: int, demands: Mapping[str, float],
           floor: float = FLOOR) -> dict[str, Lease]:
    """Every lessee's fair lease of a limit of `requests` per `window_seconds`."""
    split = tokens(requests, shares(demands, floor))
    alone = len(split) == 1
    return {lessee: Lease(t, window_seconds, 0 if alone else _burst(t))
            for lessee, t in split.items()}


def lease_for(lessee: str, requests: int, window_seconds: int,
              holders: Mapping[str, tuple[float, int]], held: Lease | None,
              floor: float = FLOOR) -> Lease:
    """`lessee`'s lease now: its fair share of the demands in `holders` (lessee ->
    (demand, tokens held)), capped by what the others hold; `held` kept where close."""
    split = leases(requests, window_seconds, {k: d for k, (d, _) in holders.items()}, floor)
    fair = split[lessee]
    cap = max(0, requests - sum(t for k, (_, t) in holders.items() if k != lessee))
    if held is None:
        cap = max(cap, math.ceil(requests * JOIN_SHARE))
    # Kept only where it also leaves every other proxy its fair share to grow into.
    room = requests - sum(lease.tokens for k, lease in split.items() if k != lessee)
    if held is not None and held.keeps(fair, min(cap, room)):
        return held
    if fair.tokens <= cap:
        return fair
    return Lease(cap, window_seconds, _burst(cap) if fair.max_tokens else 0)


def _burst(tokens: int) -> int:
    return max(1, math.ceil(tokens * SHARED_BURST)) if tokens > 0 else 0
