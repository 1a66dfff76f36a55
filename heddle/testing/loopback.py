"""Loopback addresses and ports for tests that run real servers: every address a test uses
is in 127.0.0.0/8, and no two tests of a run (nor, very likely, of concurrent runs) share
one."""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket

_counter = itertools.count(1)


def unique_subnet() -> str:
    """A /24 in 127.0.0.0/9 no other test of this run (nor, very likely, of a concurrent run)
    uses, as its prefix `127.A.B.`; its applications listen in 127.(A+128).B.0/24."""
    n = next(_counter) + os.getpid() // 120
    return f"127.{1 + os.getpid() % 120}.{n % 250 + 1}."


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` just now (for a server in another process that must be
    told its port; a server of this process should bind port 0 instead)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
