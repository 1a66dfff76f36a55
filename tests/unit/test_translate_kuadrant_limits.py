"""Kuadrant's RateLimitPolicy through Heddle's one limit model: CEL predicates and counters
as Envoy's expression descriptors, windows as the rate-limit service's units (or a proxy's
own buckets), Kuadrant's defaults and overrides from a route's rule up to its Gateway; the
Envoy configuration (golden, and accepted by real Envoy); every corpus example either
translating or failing with an error that names the field and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as local_rl
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2 as global_rl
from envoy.extensions.rate_limit_descriptors.expr.v3 import expr_pb2
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import check_golden
from test_translate_gateway import ROOT, snapshot
from test_translate_rate_limits import web_gateway

from heddle.api.kuadrant_cel import JWT_CLAIMS, envoy_text, references, unsupported
from heddle.api.kuadrant_windows import UNIT_MS, exact_unit, same_rate, window_ms
from heddle.api.loader import load_text
from heddle.model.kuadrant_limits import kuadrant_policies
from heddle.model.rate_limits import UNIT_SECONDS, MatchKind, Mode, Source
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.gateway import gateway_config
from heddle.translate.rate_limits import (
    EXPR_DESCRIPTOR,
    GLOBAL_FILTER,
    LOCAL_FILTER,
    policies,
    service_config,
)
from heddle.translate.sidecar import ROUTE

POLICIES = (ROOT / "tests" / "golden" / "ratelimit" / "kuadrant.yaml").read_text()
KUADRANT = Path("ratelimit") / "kuadrant"


def mesh() -> MeshSnapshot:
    return snapshot(POLICIES, fixture=False)


def rules_on(route: rc.Route) -> list[str]:
    """The rule ids a route counts on: its global actions', then its local buckets'."""
    per_route, local = global_rl.RateLimitPerRoute(), local_rl.LocalRateLimit()
    if GLOBAL_FILTER in route.typed_per_filter_config:
        route.typed_per_filter_config[GLOBAL_FILTER].Unpack(per_route)
    if LOCAL_FILTER in route.typed_per_filter_config:
        route.typed_per_filter_config[LOCAL_FILTER].Unpack(local)
    return ([limit.actions[0].generic_key.descriptor_value for limit in per_route.rate_limits]
            + [d.entries[0].value for d in local.descriptors])


def route_named(snap: MeshSnapshot, table: str, name: str) -> rc.Route:
    config = gateway_config(snap, web_gateway(snap)).resources.of(ROUTE)
    [found] = [r for host in config[table].virtual_hosts for r in host.routes if r.name == name]
    return found


def test_a_rate_limit_policy_reads_as_rules_of_expression_conditions() -> None:
    found = {p.key.name: p for p in kuadrant_policies(
        mesh().of_kind("kuadrant.io", "RateLimitPolicy"))}
    toystore = found["toystore"]
    assert toystore.mode is Mode.GLOBAL and not toystore.overrides
    # A rule per rate: free-posts has two, with the same predicates.
    assert [(r.name, r.requests, r.unit) for r in toystore.rules] == [
        ("per-user", 5, "MINUTE"), ("free-posts", 2, "SECOND"), ("free-posts", 100, "HOUR")]
    [counter] = toystore.rules[0].conditions
    assert (counter.source, counter.kind, counter.name) == (
        Source.EXPR, MatchKind.DISTINCT, "request.headers['x-user-id']")
    method, _plan = toystore.rules[1].conditions
    assert (method.kind, method.name, method.value) == (
        MatchKind.EXACT, "request.method == 'POST'", "true")
    assert toystore.rules[1].shared  # one counter per limit, as Limitador keeps
    # Local, by annotation: a bucket that refills every 10s, counting per JWT subject.
    admin = found["admin-per-subject"]
    assert admin.mode is Mode.LOCAL and admin.targets[0].section == "admin"
    assert admin.rules[0].fill_interval_ms == 10_000
    assert admin.rules[0].conditions[0].name == f"{JWT_CLAIMS}.sub"
    assert found["web-defaults"].merges and found["internal-overrides"].overrides


# How a Kuadrant policy of namespace default names its rules (its kind first).
RLP = "RateLimitPolicy/default"


@pytest.mark.parametrize(("route", "expected"), [
    # The rule's own policy beats the route's (atomic defaults); the Gateway's merged
    # defaults add what neither names.
    ("http.80/admin", [f"{RLP}/web-defaults/global/0", f"{RLP}/web-defaults/global/1",
                       f"{RLP}/admin-per-subject/local/0"]),
    # The route's defaults beat the Gateway's same-named per-user; per-address is added.
    ("http.80/get-toys", [f"{RLP}/toystore/global/0", f"{RLP}/toystore/global/1",
                          f"{RLP}/toystore/global/2", f"{RLP}/web-defaults/global/1"]),
    # The internal listener's atomic overrides replace every policy below them.
    ("http.8081/get-toys", [f"{RLP}/internal-overrides/global/0",
                            f"{RLP}/web-defaults/global/0", f"{RLP}/web-defaults/global/1"]),
])
def test_defaults_and_overrides_choose_a_routes_limits_as_kuadrant_does(
        route: str, expected: list[str]) -> None:
    assert rules_on(route_named(mesh(), *route.split("/"))) == expected


def test_a_predicate_and_a_counter_are_expressions_envoy_evaluates() -> None:
    snap = mesh()
    per_route = global_rl.RateLimitPerRoute()
    get_toys = route_named(snap, "http.80", "get-toys")
    get_toys.typed_per_filter_config[GLOBAL_FILTER].Unpack(per_route)
    free_posts = per_route.rate_limits[1]
    texts = []
    for action in free_posts.actions[1:]:
        assert action.extension.name == EXPR_DESCRIPTOR
        descriptor = expr_pb2.Descriptor()
        action.extension.typed_config.Unpack(descriptor)
        assert not descriptor.skip_if_error  # a failing expression: the rule does not count
        texts.append((descriptor.descriptor_key, descriptor.text))
    assert texts == [("c0", "request.method == 'POST'"),
                     ("c1", "request.headers['x-plan'] == 'free'")]
    # The rate-limit service's branch: each predicate's entry must read "true"; a counter's
    # any value (each its own bucket); Kuadrant limits have no place level (shared).
    config = service_config(policies(snap))
    branches = {d["value"]: d for d in config["descriptors"]}
    assert branches["RateLimitPolicy/default/toystore/global/1"]["descriptors"] == [
        {"key": "c0", "value": "true", "descriptors": [
            {"key": "c1", "value": "true", "rate_limit": {"unit": "SECOND",
                                                          "requests_per_unit": 2}}]}]
    assert branches["RateLimitPolicy/default/toystore/global/0"]["descriptors"] == [
        {"key": "c0", "rate_limit": {"unit": "MINUTE", "requests_per_unit": 5}}]


def test_kuadrant_limits_match_golden_and_real_envoy_accepts_them() -> None:
    snap = mesh()
    gateway = gateway_config(snap, web_gateway(snap)).resources
    check_golden("../ratelimit/kuadrant-routes.json", {
        name: MessageToDict(m) for name, m in sorted(gateway.of(ROUTE).items())})
    check_golden("../ratelimit/kuadrant-service-config.json", service_config(policies(snap)))
    out = validate_bootstrap(sidecar_bootstrap(gateway))
    assert out.returncode == 0, out.stdout + out.stderr


# CEL and windows -------------------------------------------------------------------------

def test_attribute_paths_are_found_outside_strings_and_comprehension_variables() -> None:
    text = ("request.headers.exists(h, h.lowerAscii() == 'source.id' && "
            "request.headers[h] == \"x\") && size(request.url_path) > 1")
    assert [r.dotted for r in references(text)] == [
        "request.headers", "request.headers", "request.url_path"]


def test_auth_identity_reads_the_verified_jwts_claims_and_nothing_else_changes() -> None:
    assert envoy_text("auth.identity.group == 'admin' && request.path == '/auth.identity'") \
        == f"{JWT_CLAIMS}.group == 'admin' && request.path == '/auth.identity'"
    assert envoy_text("auth.identity['kuadrant.io/groups']") == \
        f"{JWT_CLAIMS}['kuadrant.io/groups']"


def test_what_envoy_does_not_know_is_named_with_what_to_write() -> None:
    [source_id] = unsupported("source.id == source.address")
    assert source_id.reference.dotted == "source.id" and "source.address" in source_id.fix
    [claims] = unsupported("request.auth.claims['x'] == 'y'")
    assert "auth.identity" in claims.fix
    [other] = unsupported("auth.username == 'bob'")
    assert "auth.identity" in other.fix
    assert unsupported("metadata.filter_metadata['x'].y && connection.mtls") == []


def test_windows_are_go_durations_and_global_ones_must_be_a_unit() -> None:
    assert window_ms("1h30m") == 5_400_000 and window_ms("500ms") == 500
    assert {u: ms // 1000 for u, ms in UNIT_MS.items()} == UNIT_SECONDS
    assert [exact_unit(w) for w in ("1s", "60s", "1m", "24h", "720h", "10s")] == [
        "SECOND", "MINUTE", "MINUTE", "DAY", "MONTH", None]
    assert same_rate(5, "10s") == (30, "1m") and same_rate(2, "30s") == (4, "1m")


BAD = """
apiVersion: kuadrant.io/v1
kind: RateLimitPolicy
metadata:
  name: p
  namespace: default
  annotations: {heddle.dev/rate-limit-mode: %s}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: toystore}
  limits:
    l:
      rates: [{limit: 5, window: %s}]
      when: [{predicate: "request.method =="}]
      counters: [{expression: source.id}]
"""


def test_a_bad_policy_is_refused_naming_the_line_the_field_and_the_fix() -> None:
    result = load_text(BAD % ("Global", "10s"), "p.yaml")
    assert result.resources == []
    found = {e.field: e for e in result.errors}
    window = found["spec.limits.l.rates[0].window"]
    assert "not a unit" in window.message and "limit: 30, window: 1m" in window.fix
    assert "heddle.dev/rate-limit-mode: Local" in window.fix
    assert window.position is not None and window.position.line == 12
    assert "invalid CEL" in found["spec.limits.l.when[0].predicate"].message
    assert "source.id" in found["spec.limits.l.counters[0].expression"].message


def test_a_local_policy_takes_any_window_from_50ms() -> None:
    fields = {e.field for e in load_text(BAD % ("Local", "10s"), "p.yaml").errors}
    assert "spec.limits.l.rates[0].window" not in fields
    fields = {e.field for e in load_text(BAD % ("Local", "20ms"), "p.yaml").errors}
    assert "spec.limits.l.rates[0].window" in fields
    zero = (BAD % ("Local", "1s")).replace("limit: 5", "limit: 0")
    fields = {e.field for e in load_text(zero, "p.yaml").errors}
    assert "spec.limits.l.rates[0].limit" in fields  # Envoy's buckets hold 1 or more
    fields = {e.field for e in load_text(BAD % ("Sometimes", "1m"), "p.yaml").errors}
    assert "metadata.annotations.heddle.dev/rate-limit-mode" in fields


# Every RateLimitPolicy of the Kuadrant corpus -----------------------------------------------

_WINDOW = "is not a unit the rate-limit service counts in"
# What each example does as written (None: it validates and reads as rules), and what it
# does counted in each proxy (the Local annotation added, shell variables as `default`).
CORPUS_OUTCOMES: dict[str, tuple[str | None, str | None]] = {
    "config/samples/kuadrant_v1_ratelimitpolicy.yaml": (None, None),
    "doc/overviews/rate-limiting/01-targeting-a-httproute-or-grpcroute-networking-reso.yaml":
        ("invalid name", "invalid name"),  # a placeholder `<RateLimitPolicy name>`
    "doc/overviews/rate-limiting/02-targeting-a-gateway-networking-resource.yaml":
        ("invalid name", "invalid name"),
    "doc/ratelimiting/authenticated-rl-for-app-developers-grpc-services/"
    "01-step-1-service-level-rate-limiting-with-cel-predic.yaml":
        ("invalid namespace", None),  # ${KUADRANT_GRPC_NS}
    "doc/ratelimiting/authenticated-rl-for-app-developers-grpc-services/"
    "02-step-2-method-specific-override-with-section-name-.yaml": ("invalid namespace", None),
    "doc/ratelimiting/authenticated-rl-for-app-developers/"
    "01-enforce-authenticated-rate-limiting-on-requests-to.yaml": ("invalid namespace", None),
    "doc/ratelimiting/authenticated-rl-with-jwt-and-k8s-authnz/"
    "01-enforce-rate-limiting-on-requests-to-the-toy-store.yaml": (_WINDOW, None),
    "doc/ratelimiting/gateway-rl-for-cluster-operators/"
    "01-enforce-rate-limiting-on-requests-incoming-through.yaml": (_WINDOW, None),
    "doc/ratelimiting/multi-auth-rlp-diff-section/"
    "01-create-a-kuadrant-ratelimitpolicy-to-configure-rat.yaml": (_WINDOW, None),
    "doc/ratelimiting/multi-auth-rlp-diff-section/"
    "02-create-a-kuadrant-ratelimitpolicy-to-configure-rat.yaml": (_WINDOW, None),
    "doc/ratelimiting/multi-auth-rlp-same-section/01-bob.yaml": (_WINDOW, None),
    "doc/ratelimiting/multi-auth-rlp-same-section/02-alice.yaml": (_WINDOW, None),
    "doc/ratelimiting/simple-rl-for-app-developers/"
    "01-enforce-rate-limiting-on-requests-to-the-toy-store.yaml": (_WINDOW, None),
    # Placeholders (`rates: […]`, and defaults written inside limits).
    "doc/reference/ratelimitpolicy/01-high-level-example.yaml":
        ("expected object", "expected object"),
    "examples/grpc-backend/ratelimitpolicy/ratelimitpolicy-method.yaml": (_WINDOW, None),
    "examples/grpc-backend/ratelimitpolicy/ratelimitpolicy-no-reflection.yaml": (_WINDOW, None),
    "examples/grpc-backend/ratelimitpolicy/ratelimitpolicy.yaml": (_WINDOW, None),
    # source.id is no attribute Envoy has.
    "examples/toystore/ratelimitpolicy_gateway.yaml": (_WINDOW, "source.id"),
    "examples/toystore/ratelimitpolicy_httproute.yaml": (_WINDOW, None),
}


def _local(text: str) -> str:
    text = re.sub(r"\$\{[A-Z_]+\}", "default", text)
    return re.sub(r"^metadata:\n", "metadata:\n  annotations: {heddle.dev/rate-limit-mode: "
                  "Local}\n", text, flags=re.MULTILINE)


def test_the_corpus_lists_every_rate_limit_policy(corpus: Path) -> None:
    found = {str(p.relative_to(corpus / KUADRANT)) for p in (corpus / KUADRANT).rglob("*.yaml")
             if "kind: RateLimitPolicy" in p.read_text()}
    assert found == set(CORPUS_OUTCOMES)


@pytest.mark.parametrize("name", sorted(CORPUS_OUTCOMES))
def test_each_corpus_example_translates_or_says_why_not(corpus: Path, name: str) -> None:
    text = (corpus / KUADRANT / name).read_text()
    for variant, expected in zip((text, _local(text)), CORPUS_OUTCOMES[name], strict=True):
        result = load_text(variant, name)
        errors = [f"{e.field}: {e.message} ({e.fix})" for e in result.errors]
        if expected is None:
            assert errors == []
            [policy] = kuadrant_policies(result.resources)
            assert policy.rules
        else:
            assert errors and all(e.field and e.fix for e in result.errors), errors
            assert any(expected in e for e in errors), errors
