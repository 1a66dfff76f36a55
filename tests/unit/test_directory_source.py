"""A watched directory: edits reach the store quickly, broken files keep the last good config."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
    source.load()
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


async def test_an_edit_reaches_the_store_within_a_second(
    watched: Watched,
) -> None:
    source, events = watched
    (source.root / "a.yaml").write_text(service_entry("alpha").replace("DNS", "NONE"))
    event = await next_change(events, timeout=1.0)
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
