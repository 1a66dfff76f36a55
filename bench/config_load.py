"""Loading configuration at scale: the mesh of bench/sidecar_scope.py (5,000 documents at
the defaults) read by Heddle's reader (libyaml composes, positions kept) beside ruamel.yaml's
round-trip parser on the same text, then fully loaded (schemas, CEL, Istio's rules).

    python bench/config_load.py [--namespaces 50] [--services 20] [--repeat 3]

Prints JSON: documents, bytes, the best of `repeat` times for each, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from ruamel.yaml import YAML
from sidecar_scope import mesh_text

from heddle.api.loader import load_text, load_text_cooperatively
from heddle.api.yaml_documents import read_documents


def best_of(repeat: int, action: Callable[[], object]) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


async def worst_stall(load: Callable[[], Awaitable[object]]) -> float:
    """The longest the event loop went without running a 1 ms ticker while `load` ran."""
    loop = asyncio.get_running_loop()
    worst, done = 0.0, asyncio.Event()

    async def tick() -> None:
        nonlocal worst
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            worst, last = max(worst, now - last), now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    await load()
    done.set()
    await ticker
    return worst


async def blocking_load(text: str) -> None:
    load_text(text, "mesh.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    text = mesh_text(args.namespaces, args.services)
    documents, errors = read_documents(text, "mesh.yaml")
    assert errors == []
    heddle_reader = best_of(args.repeat, lambda: read_documents(text, "mesh.yaml"))
    ruamel_reader = best_of(args.repeat, lambda: list(YAML(typ="rt").load_all(text)))
    full_load = best_of(args.repeat, lambda: load_text(text, "mesh.yaml"))
    print(json.dumps({
        "documents": len(documents),
        "bytes": len(text.encode()),
        "read_seconds": round(heddle_reader, 3),
        "ruamel_round_trip_seconds": round(ruamel_reader, 3),
        "read_speedup": round(ruamel_reader / heddle_reader, 1),
        "full_load_seconds": round(full_load, 3),
        # What the control plane's event loop sees while the file loads: ADS ACKs, health
        # checks and the debug API wait at most this long.
        "worst_loop_stall_ms_cooperative": round(1000 * asyncio.run(worst_stall(
            lambda: load_text_cooperatively(text, "mesh.yaml"))), 1),
        "worst_loop_stall_ms_blocking": round(1000 * asyncio.run(worst_stall(
            lambda: blocking_load(text))), 1),
    }, indent=2))


if __name__ == "__main__":
    main()
