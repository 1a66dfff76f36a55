"""The live configuration: loaded from a directory, reloaded when its files change.

As envoyproxy/ratelimit's runtime directory: any change reloads the whole directory; a
load that fails keeps the last good configuration and logs every error (file:line, fix).
Decisions read `current` once each, so a reload never splits a decision between configs.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from watchfiles import awatch

from heddle.ratelimit.config import ConfigError, load_directory
from heddle.ratelimit.metrics import RateLimitMetrics
from heddle.ratelimit.model import RateLimitConfig

log = logging.getLogger(__name__)


class LiveConfig:
    def __init__(self, directory: Path, metrics: RateLimitMetrics,
                 merge_domains: bool = False) -> None:
        self.directory = directory
        self.metrics = metrics
        self.merge_domains = merge_domains
        self.current = RateLimitConfig()
        self.last_error: ConfigError | None = None
        self.loads = 0  # successful loads, so callers can wait for one

    def get(self) -> RateLimitConfig:
        return self.current

    def reload(self) -> bool:
        """Load the directory; on errors keep the configuration in force."""
        try:
            loaded = load_directory(self.directory, self.merge_domains)
        except ConfigError as err:
            self.last_error = err
            self.metrics.config_loads.labels("error").inc()
            log.error("rate-limit config in %s not loaded, keeping the last good one "
                      "(%d domains):\n%s", self.directory, len(self.current.domains), err)
            return False
        self.current, self.last_error = loaded, None
        self.loads += 1
        self.metrics.config_loads.labels("success").inc()
        log.info("rate-limit config loaded from %s: domains %s", self.directory,
                 ", ".join(sorted(loaded.domains)) or "(none)")
        return True

    async def watch(self, stop: asyncio.Event, debounce_ms: int = 100) -> None:
        """Reload on every change under the directory until `stop` is set."""
        async for _ in awatch(self.directory, stop_event=stop, debounce=debounce_ms,
                              recursive=True):
            self.reload()
