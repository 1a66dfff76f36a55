"""Certificates are renewed at about half their life, counted from when they arrived."""

from __future__ import annotations

import datetime
import random

from heddle.agent.certificates import WorkloadCertificate

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_renewal_is_at_half_life_with_jitter() -> None:
    cert = WorkloadCertificate(b"", b"", b"", T0, T0 + datetime.timedelta(hours=24), T0)
    rng = random.Random(7)
    for _ in range(50):
        at = cert.renew_at(rng)
        assert T0 + datetime.timedelta(hours=9.6) <= at <= T0 + datetime.timedelta(hours=14.4)


def test_a_backdated_not_before_does_not_bring_renewal_forward() -> None:
    """The CA backdates by a minute; a 4 s certificate still lives ~2 s before renewal."""
    cert = WorkloadCertificate(b"", b"", b"", T0 - datetime.timedelta(minutes=1),
                               T0 + datetime.timedelta(seconds=4), T0)
    at = cert.renew_at(random.Random(7))
    assert T0 + datetime.timedelta(seconds=1.5) <= at <= T0 + datetime.timedelta(seconds=2.5)
