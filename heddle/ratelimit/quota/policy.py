"""How a bucket's limit is split among the proxies that lease it, and what a share becomes.

A limit of N requests per window of W seconds is a rate of N/W with a burst of N, as a local
token bucket would enforce it. Each proxy i gets a share s_i of it: its demand (requests it
saw, passed or refused, per second) over the bucket's total demand, each demand raised to at
least FLOOR x the mean first, so that an idle proxy keeps a little quota and is not refused
its first requests while the next report travels. Shares sum to 1.

A share becomes whole tokens: N is split by largest remainder (the tokens sum to exactly N),
and proxy i gets a token bucket of t_i tokens refilled by t_i every W seconds. A proxy whose
share rounds to no token is refused (DENY_ALL) until its demand earns it one. Leases split
from the same demands sum to a rate of N/W and a burst of N: together the proxies pass at
most N + N/W x T in any T seconds. Each proxy's lease is recomputed as it reports, from the
others' last reports, so while demand shifts the leases can sum to more for up to one
reporting interval; and Envoy starts a changed token bucket full (see `Lease.keeps`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

FLOOR = 0.1  # an idle proxy's weight, as a fraction of the mean demand
# A lease that would grow by at most this much is kept as it is: Envoy keeps the tokens of
# an unchanged token bucket, and refills a changed one to full (a burst).
GROWTH_KEPT = 0.25


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
    """What one proxy may pass: a token bucket of `tokens` refilled by as many every
    `window_seconds`; no token: everything refused."""

    tokens: int
    window_seconds: int

    @property
    def denies(self) -> bool:
        return self.tokens <= 0

    def keeps(self, new: Lease) -> bool:
        """Whether `self`, held now, should stay in place of `new`: a smaller lease always
        replaces it (the split must not pass more than the limit), a slightly larger one does
        not (a changed bucket starts full: each change is a burst)."""
        return (new.window_seconds == self.window_seconds and not self.denies
                and self.tokens <= new.tokens <= self.tokens * (1 + GROWTH_KEPT))


def leases(requests: int, window_seconds: int, demands: Mapping[str, float],
           floor: float = FLOOR) -> dict[str, Lease]:
    """Every lessee's lease of a limit of `requests` per `window_seconds`."""
    split = tokens(requests, shares(demands, floor))
    return {lessee: Lease(t, window_seconds) for lessee, t in split.items()}
