"""AuthorizationPolicy path templates ({*}, {**}) become the uri_template matcher Istio
generates, and real Envoy accepts every template Istio's validation accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2

from heddle.api.loader import load_paths, load_text
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.authz import http_rbac_filters
from heddle.translate.sidecar import sidecar_resources

ROOT = Path(__file__).resolve().parents[2]
BACKEND = Proxy(ProxyType.SIDECAR, "backend-1", "default", "127.0.10.3", "127.255.10.3",
                (("app", "backend"), ("version", "v1")), "backend")
# Istio's CheckValidPathTemplate accepts each of these; Istio's matcher replaces {*} with *
# and {**} with ** and leaves the rest as written.
TEMPLATES = {
    "/store/{**}/cart": "/store/**/cart",
    "/api/{*}/items/{*}": "/api/*/items/*",
    "/files/{**}": "/files/**",
    "/{*}/{**}": "/*/**",
    "/v1/{*}/items:batchGet": "/v1/*/items:batchGet",
}


def snapshot_with(paths: list[str]) -> MeshSnapshot:
    hello = load_paths([ROOT / "examples" / "hello"])
    policy = load_text(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: templates, namespace: default}\n"
        "spec:\n  selector: {matchLabels: {app: backend}}\n"
        f"  rules: [{{to: [{{operation: {{paths: {paths!r}}}}}]}}]\n", "policy.yaml")
    assert hello.errors == [] and policy.errors == []
    return MeshSnapshot.build(1, [*hello.resources, *policy.resources])


def uri_templates(snapshot: MeshSnapshot) -> list[str]:
    [(_, allow)] = http_rbac_filters(snapshot, BACKEND)
    assert isinstance(allow, http_rbac_pb2.RBAC)
    [policy] = allow.rules.policies.values()
    found = []
    for permission in policy.permissions[0].or_rules.rules:
        config = uri_template_match_pb2.UriTemplateMatchConfig()
        assert permission.uri_template.typed_config.Unpack(config)
        found.append(config.path_template)
    return found


def test_templates_become_istios_uri_template_matchers() -> None:
    assert uri_templates(snapshot_with(list(TEMPLATES))) == list(TEMPLATES.values())


@pytest.mark.parametrize("path", [*TEMPLATES, "/x/{**}/"])
def test_real_envoy_accepts_each_template_istio_accepts(path: str) -> None:
    out = validate_bootstrap(sidecar_bootstrap(sidecar_resources(snapshot_with([path]), BACKEND)))
    assert out.returncode == 0, out.stdout + out.stderr
