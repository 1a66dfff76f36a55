"""`heddle explain` and `heddle describe` on a running examples/bookinfo mesh: a
VirtualService that sends reviews to a subset no DestinationRule defines makes requests fail
503 NC, and `explain --last-failure` names the missing subset, the DestinationRule and the
VirtualService; a DENY AuthorizationPolicy's 403 is explained with the policy and rule (from
the log, and for a described request); a local rate limit's 429 with its policy and rule; a
host ejected as an outlier (UH) with the caller's Envoy's view of it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from heddle.testing.waiting import wait_for

from .mesh_fixtures import ROOT, LocalMesh, running_mesh

DESTINATION_RULES = (ROOT.parent / "shared" / "corpus" / "istio" / "samples" / "bookinfo"
                     / "networking" / "destination-rule-all.yaml")
REVIEWS_V9 = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
"""
DENY_RATINGS = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-no-secrets}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules:
  - to: [{operation: {methods: [POST]}}]
  - to: [{operation: {paths: [/ratings/secret*]}}]
"""
LIMIT_DETAILS = """apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: details-limit}
spec:
  targetRefs: [{group: "", kind: Service, name: details}]
  rateLimit:
    local:
      rules:
      - clientSelectors: [{path: {type: PathPrefix, value: /details/limited}}]
        limit: {requests: 1, unit: Hour}
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("explain"), example="bookinfo",
                      extra={"destination-rules.yaml": DESTINATION_RULES.read_text()}) as running:
        yield running


def request(mesh: LocalMesh, url: str) -> int:
    """GET from the client workload through its sidecar: the status."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://{mesh.subnet}1:15001"}))
    try:
        with opener.open(url, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def applied(mesh: LocalMesh, name: str, text: str) -> Callable[[], None]:
    path: Path = mesh.config_dir / name
    path.write_text(text)
    return lambda: path.unlink(missing_ok=True)


def explain(mesh: LocalMesh, *args: str) -> dict[str, Any]:
    out = mesh.heddle("explain", *args, "-o", "json")
    page: dict[str, Any] = json.loads(out.stdout)
    print(mesh.heddle("explain", *args).stdout)  # as a user reads it
    return page


def explained(mesh: LocalMesh, workload: str, wanted: Callable[[dict[str, Any]], bool],
              ) -> dict[str, Any]:
    """`explain WORKLOAD --last-failure` once its log has the failure (Envoy flushes each
    second)."""
    found: list[dict[str, Any]] = []

    def ready() -> bool:
        out = mesh.heddle("explain", workload, "--last-failure", "-o", "json", check=False)
        if out.returncode != 0:
            return False
        found[:] = [json.loads(out.stdout)]
        return wanted(found[0])

    wait_for(ready, 30, f"the failure in {workload}'s log")
    print(mesh.heddle("explain", workload, "--last-failure").stdout)
    return found[0]


def test_a_route_to_an_undefined_subset_fails_nc_and_explain_names_the_subset(
        mesh: LocalMesh) -> None:
    remove = applied(mesh, "reviews-v9.yaml", REVIEWS_V9)
    try:
        wait_for(lambda: request(mesh, "http://reviews:9080/reviews/0") == 503, 60,
                 "the v9 route in force")
        page = explained(mesh, "client", lambda p: p["facts"].get("flags") == ["NC"])
        assert page["facts"]["code"] == 503
        assert page["facts"]["missing_subset"] == "v9"
        assert page["facts"]["destination_rule"] == ["default/reviews"]
        assert page["facts"]["virtual_service"] == "default/reviews"
        assert "subset v9" in page["summary"] and "(NC)" in page["summary"]
        text = json.dumps(page["sections"])
        assert "NC: no cluster" in text and "has subsets v1, v2, v3" in text
        # The same answer for the request described rather than logged.
        described = explain(mesh, "client", "--host", "reviews", "--path", "/reviews/0")
        assert described["facts"]["missing_subset"] == "v9"
        # describe shows the route and that the rule has no v9.
        page_text = mesh.heddle("describe", "reviews").stdout
        print(page_text)
        assert "-> reviews subset v9" in page_text
        assert "subset v3: labels {\"version\": \"v3\"} -> reviews-v3" in page_text
    finally:
        remove()


def test_a_deny_policys_403_is_explained_with_the_policy_and_rule(mesh: LocalMesh) -> None:
    remove = applied(mesh, "deny-ratings.yaml", DENY_RATINGS)
    try:
        wait_for(lambda: request(mesh, "http://ratings:9080/ratings/secret-1") == 403, 60,
                 "the DENY policy in force")
        page = explained(mesh, "ratings-v1", lambda p: p["facts"].get("code") == 403)
        assert page["facts"]["policy"] == "default/ratings-no-secrets"
        assert page["facts"]["rule"] == 1
        assert "AuthorizationPolicy default/ratings-no-secrets (DENY) rule[1]" in page["summary"]
        assert "/ratings/secret*" in json.dumps(page["sections"])
        # The client's own log: ratings answered 403, and its log says why.
        client = explained(mesh, "client", lambda p: p["facts"].get("code") == 403)
        assert "ratings-v1 answered 403" in client["summary"]
        # A described request from the client to ratings-v1: the same policy and rule.
        described = explain(mesh, "ratings-v1", "--source", "client", "--host", "ratings",
                            "--path", "/ratings/secret-2")
        assert described["facts"]["policy"] == "default/ratings-no-secrets"
        assert described["facts"]["rule"] == 1
        allowed = explain(mesh, "ratings-v1", "--source", "client", "--host", "ratings",
                          "--path", "/ratings/0")
        assert "allowed" in allowed["summary"]
        assert "DENY AuthorizationPolicy default/ratings-no-secrets" in mesh.heddle(
            "describe", "ratings-v1").stdout
    finally:
        remove()


def test_a_local_rate_limits_429_is_explained_with_the_policy(mesh: LocalMesh) -> None:
    remove = applied(mesh, "limit-details.yaml", LIMIT_DETAILS)
    try:
        statuses: list[int] = []

        def limited() -> bool:
            statuses.append(request(mesh, "http://details:9080/details/limited"))
            return statuses[-1] == 429

        wait_for(limited, 60, "a 429 from the details' local rate limit")
        def limiting() -> list[str]:  # the sidecar that refused it, once its log is written
            return [w for w in ("details-v1", "details-v2") if '" 429 ' in mesh.envoy_log(w)]

        wait_for(limiting, 30, "the 429 in a details sidecar's log")
        workload = limiting()[0]
        page = explained(mesh, workload, lambda p: p["facts"].get("code") == 429)
        assert page["facts"]["rate_limit_policy"] == "default/details-limit"
        assert page["facts"]["rate_limit_rule"] == 0
        assert "RL" in page["facts"]["flags"]
        assert "BackendTrafficPolicy default/details-limit rule 0 (1 per hour, local)" \
            in page["summary"]
        assert "BackendTrafficPolicy default/details-limit (Local)" in mesh.heddle(
            "describe", workload).stdout
    finally:
        remove()


# ratings' sidecar forwards to a port nothing listens on: it answers 503, and the caller's
# outlier detection ejects the only host after one such answer.
BROKEN_RATINGS = """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings-broken}
spec:
  workloadSelector: {labels: {app: ratings}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:1
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings-outliers}
spec:
  host: ratings
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 10m,
                       maxEjectionPercent: 100}
"""


def test_a_host_ejected_as_an_outlier_is_explained_from_the_callers_envoy(
        mesh: LocalMesh) -> None:
    remove = applied(mesh, "ratings-broken.yaml", BROKEN_RATINGS)
    try:
        # 503 from ratings' sidecar first (UF there), then UH at the client: ejected.
        wait_for(lambda: request(mesh, "http://ratings:9080/ratings/0") == 503
                 and '" 503 UH ' in mesh.envoy_log("client"), 60,
                 "the client's sidecar ejecting ratings-v1")
        page = explained(mesh, "client", lambda p: "UH" in p["facts"].get("flags", []))
        assert "ejected as an outlier right now" in page["summary"]
        text = json.dumps(page["sections"])
        assert "Endpoint state in client's Envoy now" in text
        assert f"{mesh.subnet}8:9080: ejected as an outlier (outlierDetection)" in text
        assert "ejects failing hosts: outlierDetection" in text
    finally:
        remove()
