"""MeshSnapshot indexes resources by kind/namespace/name and by the workloads they select."""

from __future__ import annotations

from textwrap import dedent

from heddle.api.loader import load_text
from heddle.model.snapshot import MeshSnapshot

POLICIES = dedent("""\
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: whole-namespace, namespace: shop}
    spec: {}
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: reviews-only, namespace: shop}
    spec:
      selector: {matchLabels: {app: reviews}}
      rules: [{}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: reviews-v2, namespace: shop}
    spec:
      selector: {matchLabels: {app: reviews, version: v2}}
      rules: [{}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: other-namespace, namespace: bank}
    spec: {}
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: reviews, namespace: shop}
    spec:
      hosts: [reviews.shop.svc.cluster.local]
      ports: [{number: 9080, name: http, protocol: HTTP}]
      workloadSelector: {labels: {app: reviews}}
""")


def snapshot() -> MeshSnapshot:
    result = load_text(POLICIES, "p.yaml")
    assert result.errors == []
    return MeshSnapshot.build(7, result.resources)


def names(resources: tuple[object, ...]) -> list[str]:
    return [r.name for r in resources]  # type: ignore[attr-defined]


def test_lookup_by_kind_namespace_and_name() -> None:
    snap = snapshot()
    assert snap.version == 7
    assert snap.get("security.istio.io", "AuthorizationPolicy", "shop", "reviews-only")
    assert snap.get("security.istio.io", "AuthorizationPolicy", "shop", "nope") is None
    assert len(snap.of_kind("security.istio.io", "AuthorizationPolicy")) == 4
    assert len(snap.of_kind("security.istio.io", "AuthorizationPolicy", "bank")) == 1


def test_selecting_finds_policies_whose_selector_matches_the_workload() -> None:
    snap = snapshot()
    v1 = snap.selecting("security.istio.io", "AuthorizationPolicy", "shop",
                        {"app": "reviews", "version": "v1"})
    assert names(v1) == ["reviews-only", "whole-namespace"]
    v2 = snap.selecting("security.istio.io", "AuthorizationPolicy", "shop",
                        {"app": "reviews", "version": "v2"})
    assert names(v2) == ["reviews-only", "reviews-v2", "whole-namespace"]
    other = snap.selecting("security.istio.io", "AuthorizationPolicy", "shop", {"app": "web"})
    assert names(other) == ["whole-namespace"]


def test_service_entry_selects_only_labelled_workloads() -> None:
    snap = snapshot()
    assert names(snap.selecting("networking.istio.io", "ServiceEntry", "shop",
                                {"app": "reviews"})) == ["reviews"]
    assert snap.selecting("networking.istio.io", "ServiceEntry", "shop", {"app": "x"}) == ()
