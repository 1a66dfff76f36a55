"""The checks of scenarios that are more than one round trip compared, as the upstream
tests make them: a retry simulation's fresh request id per attempt, a WebSocket echo, the
share of requests a percentage mirror copies (a binomial band), and status that follows an
update of the spec (observedGeneration). Pure where they can be; the runner sends.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import aiohttp

from heddle.conformance.scenarios import Case

MIRROR_REQUESTS, MIRROR_CONCURRENCY, MIRROR_CHECKS, MIRROR_SIGMAS = 500, 10, 5, 3.0
REQUEST_ID = "request-id"  # the upstream's requestIDQueryParam
WEBSOCKET_TEXT = "Websocket Support!"
WEBSOCKET_BINARY = bytes([1, 2, 3, 4, 5, 6, 7])


def with_query(case: Case, values: Mapping[str, str] | Sequence[tuple[str, str]]) -> Case:
    """`case` with query parameters added to its request's path (and to the path the backend
    must see, when that is the request's), encoded as Go's url.Values (sorted by name)."""
    pairs = sorted(values.items() if isinstance(values, Mapping) else values)
    path = case.request.path
    joined = path + ("&" if "?" in path else "?") + urlencode(pairs)
    expected = case.expected_request
    if expected.path == path:
        expected = replace(expected, path=joined)
    return replace(case, request=replace(case.request, path=joined), expected_request=expected)


def with_retry_id(case: Case, request_id: str) -> Case:
    """A retry-simulation attempt: the case's simulation values and a fresh `uuid`, so the
    backend counts this request's attempts apart from every other's."""
    return with_query(case, [*case.retry_simulation, ("uuid", request_id)])


async def _websocket(url: str, origin: str, host: str, timeout: float) -> str | None:
    headers = {"Host": host} if host else {}
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout, trust_env=False) as session, \
            session.ws_connect(url, origin=origin, headers=headers, autoping=True) as ws:
        await ws.send_str(WEBSOCKET_TEXT)
        text = await ws.receive(timeout=timeout)
        if text.type != aiohttp.WSMsgType.TEXT or text.data != WEBSOCKET_TEXT:
            return f"unexpected reply - want: {WEBSOCKET_TEXT!r} got: {text.data!r}"
        await ws.send_bytes(WEBSOCKET_BINARY)
        binary = await ws.receive(timeout=timeout)
        got = binary.data.encode() if isinstance(binary.data, str) else binary.data
        if got != WEBSOCKET_BINARY:
            return f"unexpected reply - want: {WEBSOCKET_BINARY!r} got: {got!r}"
    return None


def websocket_echo(address: str, port: int, path: str, host: str = "", origin: str = "",
                   timeout: float = 10.0) -> str | None:
    """None when a text and a binary message come back through a WebSocket to `path`."""
    try:
        return asyncio.run(_websocket(f"ws://{address}:{port}{path}",
                                      origin or "ws://gateway/", host, timeout))
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        return f"websocket: {type(err).__name__}: {err}"


def mirror_band(percent: float, total: int = MIRROR_REQUESTS,
                sigmas: float = MIRROR_SIGMAS) -> tuple[float, float]:
    """The mirrored count a conforming mirror gives with `total` requests: each is mirrored
    with probability p, so the count is Binomial(total, p), within `sigmas` deviations."""
    p = percent / 100
    margin = sigmas * math.sqrt(total * p * (1 - p))
    return total * p - margin, total * p + margin


def mirror_share_error(counts: Mapping[str, int], percents: Sequence[tuple[str, float]],
                       total: int = MIRROR_REQUESTS) -> str | None:
    """None when each mirror's count of `total` requests is within its band."""
    errors = []
    for name, percent in percents:
        low, high = mirror_band(percent, total)
        got = counts.get(name, 0)
        if not low <= got <= high:
            errors.append(f"{name} did not meet the mirroring percentage within tolerance: "
                          f"expected between {low:.1f} and {high:.1f}, got {got}")
    return "; ".join(errors) or None


def stale_conditions(obj: Mapping[str, Any]) -> str | None:
    """HTTPRouteMustHaveLatestConditions: None when every parent's every condition observed
    the route's generation."""
    generation = (obj.get("metadata") or {}).get("generation")
    parents = (obj.get("status") or {}).get("parents") or []
    if not parents:
        return "no parent status"
    for parent in parents:
        for condition in parent.get("conditions") or []:
            if condition.get("observedGeneration") != generation:
                return (f"condition {condition.get('type')} observed generation "
                        f"{condition.get('observedGeneration')}, the route is at {generation}")
    return None


def _set(doc: Any, path: str, value: Any) -> None:
    """Set `a.b.0.c` in `doc` (numbers index lists)."""
    *parents, last = path.split(".")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    if isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


def patched(documents: Sequence[dict[str, Any]], target: str,
            changes: Mapping[str, Any], describe: Any) -> list[dict[str, Any]]:
    """The documents with `changes` (dotted path -> value) made to the one `describe`
    names `target` ("Kind ns/name"); a ValueError when there is none."""
    out = []
    found = False
    for doc in documents:
        if describe(doc) == target:
            doc = copy.deepcopy(doc)
            for path, value in changes.items():
                _set(doc, path, value)
            found = True
        out.append(doc)
    if not found:
        raise ValueError(f"no {target} to update")
    return out
