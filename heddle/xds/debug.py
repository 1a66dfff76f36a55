"""The control plane's debug API (port 15014): sync status, config dumps, resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from google.protobuf.json_format import MessageToDict

from heddle.api.diagnostics import Diagnostic
from heddle.model.snapshot import MeshSnapshot
from heddle.xds.server import XdsServer


def _resource_json(snapshot: MeshSnapshot) -> list[dict[str, Any]]:
    return [
        {"key": {"group": r.key.group, "kind": r.kind, "namespace": r.namespace,
                 "name": r.name},
         "source": str(r.source) if r.source else "",
         "object": dict(r.body)}
        for r in snapshot.resources()
    ]


def debug_app(xds: XdsServer, snapshots: Callable[[], MeshSnapshot],
              diagnostics: Callable[[], list[Diagnostic]]) -> web.Application:
    async def syncz(_: web.Request) -> web.Response:
        return web.json_response([s.to_json() for s in xds.statuses.values()])

    async def config_dump(request: web.Request) -> web.Response:
        """`?proxy=` a node id (its newest stream's config) or a connection id."""
        proxy_id = request.query.get("proxy", "")
        config = await xds.config_of(proxy_id)
        if config is None:
            known = ", ".join(sorted({s.proxy_id for s in xds.statuses.values()
                                      if s.connected})) or "none connected"
            return web.json_response({"error": f"no connected proxy {proxy_id!r} ({known})"},
                                     status=404)
        return web.json_response({
            type_url: {name: MessageToDict(m) for name, m in sorted(items.items())}
            for type_url, items in config.by_type.items()
        })

    async def resources(_: web.Request) -> web.Response:
        snapshot = snapshots()
        return web.json_response({"version": snapshot.version,
                                  "resources": _resource_json(snapshot)})

    async def problems(_: web.Request) -> web.Response:
        return web.json_response([str(d) for d in diagnostics()])

    app = web.Application()
    app.router.add_get("/debug/syncz", syncz)
    app.router.add_get("/debug/config_dump", config_dump)
    app.router.add_get("/debug/resources", resources)
    app.router.add_get("/debug/diagnostics", problems)
    app.router.add_get("/ready", lambda _: _ok())
    return app


async def _ok() -> web.Response:
    return web.Response(text="ok")
