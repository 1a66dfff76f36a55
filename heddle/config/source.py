"""Where configuration comes from: a `ConfigSource` fills a ConfigStore and keeps it current.

The watched directory (heddle.config.directory) is one; Kubernetes list/watch is the next.
The application depends on this Protocol, not on any one source.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from heddle.config.events import StoreEvent


class ConfigSource(Protocol):
    @property
    def ready(self) -> asyncio.Event:
        """Set once the source is watching: changes from then on reach the store."""
        ...

    async def load(self) -> list[StoreEvent]:
        """Read everything there is now into the store; each change's event."""
        ...

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Apply changes as they happen, until `stop` is set."""
        ...
