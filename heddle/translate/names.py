"""Envoy resource names, as Istio spells them so that users recognise them."""

from __future__ import annotations


def outbound_cluster(port: int, hostname: str, subset: str = "") -> str:
    return f"outbound|{port}|{subset}|{hostname}"


def inbound_cluster(port: int) -> str:
    return f"inbound|{port}||"


def parse_cluster(name: str) -> tuple[str, int, str, str]:
    """`outbound|9080|v1|reviews...` -> ("outbound", 9080, "v1", "reviews...")."""
    direction, port, subset, hostname = name.split("|")
    return direction, int(port), subset, hostname
