"""Workload logs rotate by size as kubelet rotates container logs: the live file is copied
to LOG.1 (older ones shifted, the oldest dropped) and emptied in place, so a writer that
opened it for appending keeps writing to it without being told."""

from __future__ import annotations

import os
from pathlib import Path

from heddle.agent.logrotate import rotate_if_large


def test_a_log_past_its_limit_is_copied_aside_and_emptied_for_its_writer(tmp_path: Path) -> None:
    log = tmp_path / "envoy.log"
    writer = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(writer, b"a" * 100)
        assert rotate_if_large(log, max_bytes=100) is False  # at the limit, not past it
        os.write(writer, b"b")
        assert rotate_if_large(log, max_bytes=100) is True
        assert (tmp_path / "envoy.log.1").read_bytes() == b"a" * 100 + b"b"
        assert log.stat().st_size == 0
        os.write(writer, b"after\n")  # the same descriptor, at the start of the new file
        assert log.read_bytes() == b"after\n"
    finally:
        os.close(writer)


def test_only_so_many_rotated_logs_are_kept(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    for n in range(6):
        log.write_text(f"generation {n}\n" + "x" * 20)
        assert rotate_if_large(log, max_bytes=10, files=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log", "app.log.1", "app.log.2"]
    assert (tmp_path / "app.log.1").read_text().startswith("generation 5")
    assert (tmp_path / "app.log.2").read_text().startswith("generation 4")
