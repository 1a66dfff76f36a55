"""The merged metrics endpoint, `POD_IP:15020/stats/prometheus`, as Istio's agent serves it:
Envoy's Prometheus text, then the application's own metrics when its workload names them
(`prometheus.io/scrape`, `/port`, `/path` annotations), so one scrape per workload gets both.

Envoy prints the stats access logger's metrics as `envoy_istio_...` (only Istio's own proxy
build registers a bare namespace); here they get Istio's names, `istio_...`. Only names
change: values, labels and the other Envoy series pass as Envoy wrote them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from heddle.agent import http
from heddle.model.metric_names import ENVOY_PREFIX
from heddle.model.scrape import MERGED_PATH, AppMetrics

log = logging.getLogger(__name__)

PATH = MERGED_PATH
ISTIO_PREFIX = "istio_"


def istio_names(envoy_text: str) -> str:
    """Envoy's Prometheus text with `envoy_istio_*` series (and their # TYPE / # HELP
    lines) named `istio_*`."""
    out: list[str] = []
    for line in envoy_text.splitlines():
        if line.startswith(ENVOY_PREFIX):
            line = ISTIO_PREFIX + line[len(ENVOY_PREFIX):]
        elif line.startswith(("# TYPE " + ENVOY_PREFIX, "# HELP " + ENVOY_PREFIX)):
            line = line[:7] + ISTIO_PREFIX + line[7 + len(ENVOY_PREFIX):]
        out.append(line)
    return "\n".join(out) + "\n" if out else ""


Fetch = Callable[[str], Awaitable[str]]  # admin path -> body


async def merged(envoy: Fetch, app: AppMetrics | None) -> str:
    """Envoy's metrics (Istio's names), then the application's; an application that does
    not answer leaves its part out (as Istio's agent does), Envoy's metrics stay."""
    text = istio_names(await envoy(PATH))
    if app is not None:
        try:
            answer = await http.fetch(app.url, timeout=5.0)
        except http.HttpError as err:
            log.info("application metrics at %s: %s", app.url, err)
        else:
            if answer.status_code == 200:
                text += answer.text if answer.text.endswith("\n") else answer.text + "\n"
    return text


def merged_metrics_handler(envoy: Fetch, app: AppMetrics | None) -> http.Handler:
    async def handle(method: str, target: str) -> tuple[int, str]:
        if target.partition("?")[0] != PATH:
            return 404, "not found"
        if method not in ("GET", "HEAD"):
            return 405, "method not allowed"
        try:
            return 200, await merged(envoy, app)
        except http.HttpError as err:
            return 503, f"Envoy's metrics are not available: {err}"
    return handle
