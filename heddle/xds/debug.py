"""The control plane's debug API (port 15014): sync status, config dumps, resources, and the
configuration's problems."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from google.protobuf.json_format import MessageToDict

from heddle.api.diagnostics import Diagnostic
from heddle.api.resource import Resource
from heddle.config.problems import ConfigProblems
from heddle.explain.api import describe_answer, explain_answer
from heddle.model.rate_limits import policy_status
from heddle.model.snapshot import MeshSnapshot
from heddle.xds.server import XdsServer


def _resource_json(snapshot: MeshSnapshot, rejected: dict[str, Diagnostic]
                   ) -> list[dict[str, Any]]:
    """Each resource in force; `rejected`: the first error of its file's last edit, when
    that edit was refused (the resource is the file's last good version)."""
    return [
        {"key": {"group": r.key.group, "kind": r.kind, "namespace": r.namespace,
                 "name": r.name},
         "source": str(r.source) if r.source else "",
         "rejected": str(rejected[r.source.file]) if r.source and r.source.file in rejected
         else "",
         "object": _with_status(snapshot, r)}
        for r in snapshot.resources()
    ]


def _with_status(snapshot: MeshSnapshot, resource: Resource[Any]) -> dict[str, Any]:
    """The document as written, with the status the control plane keeps for it (Gateway
    API resources: their conditions, listeners and per-parent route status)."""
    status = snapshot.gateway_api.status_json(resource.key) or policy_status(snapshot, resource)
    return dict(resource.body) if status is None else {**resource.body, "status": status}


def debug_app(xds: XdsServer, snapshots: Callable[[], MeshSnapshot],
              diagnostics: Callable[[], list[Diagnostic]],
              problems: Callable[[], ConfigProblems]) -> web.Application:
    """`/debug/diagnostics`: every problem in force, one line each; `/debug/problems`: the
    same by file (file:line, whether its last edit was refused) with the files fixed
    lately, as heddle.config.problems.ConfigProblems.to_json shapes them."""

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
                                  "resources": _resource_json(snapshot,
                                                              problems().rejected())})

    async def configz(_: web.Request) -> web.Response:
        """istiod's /debug/configz: every configuration object in force, with its status."""
        snapshot = snapshots()
        return web.json_response([_with_status(snapshot, r) for r in snapshot.resources()])

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=xds.metrics.exposition(),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def all_diagnostics(_: web.Request) -> web.Response:
        return web.json_response([str(d) for d in diagnostics()])

    async def by_file(_: web.Request) -> web.Response:
        return web.json_response(problems().to_json())

    async def describe(request: web.Request) -> web.Response:
        """`heddle describe`: `?name=` a workload or service, `&namespace=`."""
        code, body = describe_answer(snapshots(), request.query.get("name", ""),
                                     request.query.get("namespace", ""))
        return web.json_response(body, status=code)

    async def explain(request: web.Request) -> web.Response:
        """`heddle explain`: a JSON question, as heddle.explain.api.explain_answer reads it."""
        try:
            question = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        code, body = explain_answer(snapshots(), question if isinstance(question, dict) else {})
        return web.json_response(body, status=code)

    app = web.Application()
    app.router.add_get("/debug/syncz", syncz)
    app.router.add_get("/debug/describe", describe)
    app.router.add_post("/debug/explain", explain)
    app.router.add_get("/debug/configz", configz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/debug/config_dump", config_dump)
    app.router.add_get("/debug/resources", resources)
    app.router.add_get("/debug/diagnostics", all_diagnostics)
    app.router.add_get("/debug/problems", by_file)
    app.router.add_get("/ready", lambda _: _ok())
    return app


async def _ok() -> web.Response:
    return web.Response(text="ok")
