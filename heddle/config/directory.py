"""A directory of YAML files as a config source: loaded whole, then watched for changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from watchfiles import awatch

from heddle.api.diagnostics import Diagnostic, Severity, SourcePosition
from heddle.api.loader import (
    YAML_SUFFIXES,
    LoadResult,
    UnreadableConfig,
    load_text_cooperatively,
    read_config_text,
    yaml_files,
)
from heddle.config.events import StoreEvent
from heddle.config.store import ConfigStore

log = logging.getLogger(__name__)


class DirectorySource:
    """Feeds a ConfigStore from every YAML file under `root` (hidden paths ignored), or from
    the one file `root` names.

    Each file is one store source, named by its path, so an edit or a broken file affects
    only that file's resources. Adds, edits, deletes and renames are all seen as the files
    they leave behind. Its files are put in the store's `layer` (see ConfigStore).
    """

    def __init__(self, root: Path, store: ConfigStore, debounce_ms: int = 50,
                 layer: int = 0) -> None:
        path = root.resolve()
        # One file: watch its folder for it alone (editors replace files when they save).
        self.only = path if path.is_file() else None
        self.root = path.parent if self.only else path
        self.store = store
        self.debounce_ms = debounce_ms
        self.layer = layer
        self.ready = asyncio.Event()

    def _is_config(self, path: Path) -> bool:
        if self.only is not None:
            return path == self.only
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return False
        return path.suffix in YAML_SUFFIXES and not any(
            part.startswith(".") for part in relative.parts
        )

    def _read(self, path: Path) -> str | StoreEvent:
        """The file's text, or the store's event for a file that is gone or unreadable."""
        try:
            return read_config_text(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return self.store.remove(str(path))
        except UnreadableConfig as err:
            return self.store.put(str(path), LoadResult(diagnostics=[err.diagnostic]),
                                  layer=self.layer)

    def _failed(self, source: str, err: Exception) -> LoadResult:
        """A file whose loading raised (MemoryError included): it must never stop the
        watch; what was allocated for it is freed with its text."""
        log.exception("loading %s failed", source)
        return LoadResult(diagnostics=[Diagnostic(
            Severity.ERROR, f"cannot load: {type(err).__name__}: {err}",
            SourcePosition(source, 1, 1),
            fix="check the file; its last good version stays in force")])

    async def sync_file(self, path: Path) -> StoreEvent:
        """Bring the store in line with one file as it is on disk now, letting the event
        loop run while a big file loads."""
        text = self._read(path)
        if isinstance(text, StoreEvent):
            return text
        try:
            loaded = await load_text_cooperatively(text, str(path))
        except Exception as err:
            loaded = self._failed(str(path), err)
        return self.store.put(str(path), loaded, layer=self.layer)

    def _present(self) -> list[Path]:
        if self.only is not None:
            return [self.only] if self.only.is_file() else []
        if not self.root.is_dir():
            return []
        return [Path(p) for p in sorted({str(p.resolve()) for p in yaml_files([self.root])})]

    def _forget_missing(self, present: list[Path]) -> list[StoreEvent]:
        names = {str(p) for p in present}
        return [self.store.remove(source) for source in self.store.sources()
                if self._is_config(Path(source)) and source not in names]

    async def load(self) -> list[StoreEvent]:
        """Read every file now, letting the event loop run between and within files;
        forget files the store holds that are gone."""
        present = self._present()
        return [await self.sync_file(p) for p in present] + self._forget_missing(present)

    async def watch(self, stop: asyncio.Event | None = None, backoff: float = 0.2) -> None:
        """Apply file changes until `stop` is set. `ready` is set once the watch is live.

        Nothing ends the watch but `stop`: if watching fails, it is logged and started again
        (with a full rescan, so no change in between is missed)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self._watch_once(stop)
                if stop.is_set():
                    return
                log.warning("watching %s ended; watching again in %.1fs", self.root, backoff)
            except Exception:
                log.exception("watching %s failed; watching again in %.1fs", self.root,
                              backoff)
            self.ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, 5.0)

    async def _watch_once(self, stop: asyncio.Event) -> None:
        async for changes in awatch(
            self.root,
            debounce=self.debounce_ms,
            step=10,
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=100,
            recursive=self.only is None,
        ):
            if not self.ready.is_set():
                self.ready.set()
                # Anything written before the watch went live is picked up by a full rescan.
                await self.load()
            touched = {Path(p) for _, p in changes}
            directories = [p for p in touched if not p.suffix and not p.is_file()]
            if directories:  # a directory moved or vanished: rescan everything
                await self.load()
                continue
            for path in sorted(touched):
                if self._is_config(path):
                    await self.sync_file(path)
