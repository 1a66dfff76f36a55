"""`metadata.generation` as the Kubernetes API server keeps it, for the resources whose
status reports an `observedGeneration` (Gateway API's): 1 when a resource appears, one more
each time anything but its metadata and status changes. A generation written in a file is
replaced, as the API server ignores a client's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from heddle.api.resource import Resource, ResourceKey

GROUPS = frozenset({"gateway.networking.k8s.io"})


def _spec(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("metadata", "status")}


class Generations:
    def __init__(self) -> None:
        # key -> (the resource as loaded, its spec then, its generation, the stamped copy)
        self._seen: dict[ResourceKey, tuple[Resource[Any], dict[str, Any], int,
                                            Resource[Any]]] = {}

    def stamp(self, resources: Mapping[ResourceKey, Resource[Any]],
              ) -> dict[ResourceKey, Resource[Any]]:
        """`resources` with each counted one's generation in its body; a resource that did
        not change keeps its stamped copy, so it stays the same object."""
        out: dict[ResourceKey, Resource[Any]] = {}
        for key, resource in resources.items():
            if key.group not in GROUPS:
                out[key] = resource
                continue
            seen = self._seen.get(key)
            if seen is not None and seen[0] is resource:
                out[key] = seen[3]
                continue
            spec = _spec(resource.body)
            generation = 1 if seen is None else seen[2] + (spec != seen[1])
            meta = resource.body.get("metadata")
            body = {**resource.body, "metadata": {**(meta if isinstance(meta, Mapping)
                                                     else {}), "generation": generation}}
            stamped = dataclasses.replace(resource, body=MappingProxyType(body))
            self._seen[key] = (resource, spec, generation, stamped)
            out[key] = stamped
        for key in set(self._seen) - set(resources):  # deleted: a new one starts at 1
            del self._seen[key]
        return out
