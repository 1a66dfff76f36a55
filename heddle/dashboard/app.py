"""`heddle dashboard`'s page, served under `/dashboard/` on the control plane's debug port.

The page (static HTML, JavaScript and the vendored Cytoscape.js graph library: nothing from
a CDN) polls four JSON endpoints and redraws in place:

- `api/graph`: the service graph with rates over the last `RATE_WINDOW_S` seconds;
- `api/proxies`: each proxy's sync state, as `/debug/syncz` has it;
- `api/problems`: the configuration's errors and warnings, by file;
- `api/workload?proxy=NODE_ID`: what applies to one workload.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from heddle.config.problems import ConfigProblems
from heddle.dashboard.graph import build
from heddle.dashboard.scrape import MetricsHistory
from heddle.dashboard.workload_config import workload_config
from heddle.model.snapshot import MeshSnapshot
from heddle.xds.server import XdsServer

RATE_WINDOW_S = 10.0
_STATIC = {
    "index.html": "text/html",
    "dashboard.js": "application/javascript",
    "dashboard.css": "text/css",
    "vendor/cytoscape.min.js": "application/javascript",
}


def _static(name: str) -> bytes:
    return resources.files("heddle.dashboard").joinpath("static", name).read_bytes()


def dashboard_app(xds: XdsServer, snapshots: Callable[[], MeshSnapshot],
                  problems: Callable[[], ConfigProblems]) -> web.Application:
    history = MetricsHistory(xds.proxies)
    files = {name: (_static(name), kind) for name, kind in _STATIC.items()}

    async def static(request: web.Request) -> web.Response:
        name = request.match_info.get("name") or "index.html"
        if name not in files:
            raise web.HTTPNotFound()
        body, kind = files[name]
        return web.Response(body=body, content_type=kind,
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    async def graph(_: web.Request) -> web.Response:
        latest = await history.latest()
        body: dict[str, Any] = build(history.earlier_than(latest, RATE_WINDOW_S),
                                     latest).to_json()
        body["scrapeFailures"] = dict(sorted(history.failures.items()))
        return web.json_response(body)

    async def proxies(_: web.Request) -> web.Response:
        return web.json_response([s.to_json() for s in xds.statuses.values()])

    async def config_problems(_: web.Request) -> web.Response:
        return web.json_response(problems().to_json())

    async def workload(request: web.Request) -> web.Response:
        proxy_id = request.query.get("proxy", "")
        proxy = next((p for p in xds.proxies() if p.id == proxy_id), None)
        if proxy is None:
            return web.json_response({"error": f"no connected proxy {proxy_id!r}"}, status=404)
        return web.json_response(workload_config(snapshots(), proxy,
                                                 await xds.config_of(proxy_id)))

    app = web.Application()
    app.router.add_get("/", static)
    app.router.add_get("/api/graph", graph)
    app.router.add_get("/api/proxies", proxies)
    app.router.add_get("/api/problems", config_problems)
    app.router.add_get("/api/workload", workload)
    app.router.add_get("/{name:(index.html|dashboard.js|dashboard.css|vendor/cytoscape.min.js)}",
                       static)
    return app
