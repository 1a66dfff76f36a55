"""Foreground `heddle up` shows the control plane's lines for people and every warning or
error, and nothing else of its log."""

from __future__ import annotations

import logging

from heddle.local.narration import shown


def test_lines_for_people_and_problems_are_shown_and_the_rest_is_not() -> None:
    stamp = "2025-01-01 12:00:00,123"
    assert shown(f"{stamp} INFO heddle.mesh: pushed to 3 of 5 proxies") == (
        logging.INFO, "pushed to 3 of 5 proxies")
    assert shown(f"{stamp} WARNING heddle.xds.server: client-1 rejected Cluster version 4: "
                 "bad") == (logging.WARNING, "client-1 rejected Cluster version 4: bad")
    assert shown(f"{stamp} ERROR heddle.mesh: a.yaml:3:1: error: x") == (
        logging.ERROR, "a.yaml:3:1: error: x")
    assert shown(f"{stamp} INFO heddle.xds.server: client-1 connected (sotw)") is None
    assert shown("Traceback (most recent call last):") is None
