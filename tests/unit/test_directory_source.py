"""A watched directory: edits reach the store quickly, broken files keep the last good config."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from heddle.api.loader import LoadResult
from heddle.config import directory
from heddle.config.directory import DirectorySource
from heddle.config.events import ChangeType, StoreEvent
from heddle.config.store import ConfigStore
from heddle.model.snapshot import MeshSnapshot

SE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: NAME}
spec:
  hosts: [NAME.example.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
"""


def service_entry(name: str) -> str:
    return SE.replace("NAME", name)


Watched = tuple[DirectorySource, asyncio.Queue[StoreEvent]]


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    (tmp_path / "a.yaml").write_text(service_entry("alpha"))
    store = ConfigStore()
    source = DirectorySource(tmp_path, store)
    await source.load()
    events = store.subscribe()
    stop = asyncio.Event()
    task = asyncio.create_task(source.watch(stop))
    await asyncio.wait_for(source.ready.wait(), timeout=30)
    while not events.empty():  # the rescan when the watch went live
        events.get_nowait()
    yield source, events
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def next_change(events: asyncio.Queue[StoreEvent], timeout: float) -> StoreEvent:
    """The next event that carries changes or diagnostics, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        event = await asyncio.wait_for(events.get(), timeout=deadline - time.monotonic())
        if event.changes or event.diagnostics:
            return event


def names(source: DirectorySource) -> list[str]:
    return sorted(r.name for r in MeshSnapshot.of(source.store).of_kind(
        "networking.istio.io", "ServiceEntry"))


async def test_initial_load_reads_every_file(watched: tuple[DirectorySource, object]) -> None:
    source, _ = watched
    assert names(source) == ["alpha"]


async def test_an_edit_reaches_the_store(
    watched: Watched,
) -> None:
    source, events = watched
    (source.root / "a.yaml").write_text(service_entry("alpha").replace("DNS", "NONE"))
    event = await next_change(events, timeout=10.0)
    assert [(c.type, c.key.name) for c in event.changes] == [(ChangeType.UPDATED, "alpha")]


async def test_a_broken_edit_keeps_the_last_good_resources_and_reports_it(
    watched: Watched,
) -> None:
    source, events = watched
    (source.root / "a.yaml").write_text(service_entry("alpha").replace("hosts:", "hostz:"))
    event = await next_change(events, timeout=5.0)
    assert event.changes == ()
    assert any('unknown field "hostz"' in d.message for d in event.diagnostics)
    assert names(source) == ["alpha"]


async def test_add_delete_and_rename_are_seen(
    watched: Watched,
) -> None:
    source, events = watched
    (source.root / "sub").mkdir()
    (source.root / "sub" / "b.yaml").write_text(service_entry("beta"))
    while names(source) != ["alpha", "beta"]:
        await next_change(events, timeout=5.0)
    (source.root / "sub" / "b.yaml").rename(source.root / "c.yaml")
    while sorted(source.store.sources()) != [str(source.root / n) for n in ("a.yaml", "c.yaml")]:
        await next_change(events, timeout=5.0)
    assert names(source) == ["alpha", "beta"]
    (source.root / "a.yaml").unlink()
    while names(source) != ["beta"]:
        await next_change(events, timeout=5.0)


async def test_non_yaml_and_hidden_files_are_ignored(
    watched: Watched,
) -> None:
    source, events = watched
    (source.root / "notes.txt").write_text(service_entry("ignored"))
    (source.root / ".hidden.yaml").write_text(service_entry("hidden"))
    (source.root / "d.yaml").write_text(service_entry("delta"))
    while "delta" not in names(source):
        await next_change(events, timeout=5.0)
    assert names(source) == ["alpha", "delta"]


async def test_a_file_that_cannot_be_loaded_never_stops_the_watch(
    watched: Watched, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, events = watched
    real_load = directory.load_text_cooperatively

    async def exhausting(text: str, file: str) -> LoadResult:
        if file.endswith("huge.yaml"):
            raise MemoryError
        return await real_load(text, file)

    monkeypatch.setattr(directory, "load_text_cooperatively", exhausting)
    (source.root / "huge.yaml").write_text(service_entry("huge"))
    event = await next_change(events, timeout=10.0)
    assert [d.message for d in event.diagnostics] == ["cannot load: MemoryError: "]
    (source.root / "b.yaml").write_text(service_entry("beta"))
    while names(source) != ["alpha", "beta"]:
        await next_change(events, timeout=10.0)


async def test_a_watch_that_fails_is_logged_and_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    real_awatch = directory.awatch
    failures = [OSError(28, "inotify watch limit reached")]

    def flaky_awatch(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_awatch(*args, **kwargs)

    monkeypatch.setattr(directory, "awatch", flaky_awatch)
    store = ConfigStore()
    source = DirectorySource(tmp_path, store)
    stop = asyncio.Event()
    task = asyncio.create_task(source.watch(stop, backoff=0.01))
    try:
        await asyncio.wait_for(source.ready.wait(), timeout=30)
        assert "watching" in caplog.text and "inotify watch limit reached" in caplog.text
        (tmp_path / "a.yaml").write_text(service_entry("alpha"))
        events = store.subscribe()
        while names(source) != ["alpha"]:
            await next_change(events, timeout=10.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def test_a_big_file_loads_without_stalling_the_event_loop(watched: Watched) -> None:
    """While thousands of documents load, other tasks (ADS ACKs, health checks, the debug
    API) keep running: the load hands the loop back between slices of work."""
    source, _ = watched
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    await source.sync_file(write_services(source.root / "big.yaml", 2000))
    task.cancel()
    assert len([n for n in names(source) if n.startswith("svc-")]) == 2000
    assert ticks >= 10, ticks


def write_services(path: Path, count: int) -> Path:
    path.write_text("---\n".join(service_entry(f"svc-{i}") for i in range(count)))
    return path


async def test_a_binary_file_is_a_problem_naming_the_file(tmp_path: Path) -> None:
    binary = tmp_path / "logo.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    store = ConfigStore()
    await DirectorySource(tmp_path, store).load()
    [problems] = store.problems().files
    assert problems.file == str(binary.resolve()) and problems.rejected
    [error] = problems.problems
    assert str(error).startswith(f"{binary.resolve()}:1:1: error: {binary.resolve()} is not "
                                 "UTF-8 text (byte 0)")
