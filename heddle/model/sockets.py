"""Where a workload's agent serves its certificate to Envoy (SDS over a Unix socket): one
name both the agent and `heddle down` (which removes what a killed agent left) compute."""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path


def sds_socket_for(workdir: Path) -> Path:
    """A short path for the SDS socket (Unix socket paths are limited to ~100 bytes), named
    by a 64-bit checksum of the workdir: a name, not a secret, so no hashlib (loading OpenSSL
    for it would cost every agent 3.7 MB)."""
    path = str(workdir.resolve()).encode()
    digest = f"{zlib.crc32(path):08x}{zlib.adler32(path):08x}"
    return Path(tempfile.gettempdir()) / f"heddle-sds-{digest}.sock"
