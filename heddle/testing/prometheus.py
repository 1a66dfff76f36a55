"""A real Prometheus's HTTP API, as the tests read it: instant queries and the targets list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class QueryError(Exception):
    """Prometheus refused a query (bad PromQL, a timeout); the message is its own."""


@dataclass(frozen=True)
class Target:
    job: str
    labels: dict[str, str]
    scrape_url: str
    health: str
    last_error: str


class PrometheusApi:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=self.timeout,
                             trust_env=False)
        body = response.json()
        if body.get("status") != "success":
            raise QueryError(f"{path} {params or ''}: {body.get('errorType')}: "
                             f"{body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's series (each with `metric` labels and a `value`)."""
        data = self._get("/api/v1/query", {"query": expr})
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def value(self, expr: str) -> float | None:
        """The one number an expression returns, or None when it returns nothing."""
        found = self.query(expr)
        return float(found[0]["value"][1]) if found else None

    def targets(self) -> list[Target]:
        data = self._get("/api/v1/targets", {"state": "active"})
        return [Target(t["labels"].get("job", ""), t["labels"], t["scrapeUrl"], t["health"],
                       t.get("lastError", "")) for t in data["activeTargets"]]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False
