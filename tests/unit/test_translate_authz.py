"""AuthorizationPolicy -> RBAC: golden output for every field, accepted by real Envoy."""

from __future__ import annotations

import re

from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import ROOT, check_golden

from heddle.api.loader import load_paths
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate import authz
from heddle.translate.authz import http_rbac_filters, network_rbac_filters
from heddle.translate.sidecar import sidecar_resources

BACKEND = Proxy(ProxyType.SIDECAR, "backend-1", "default", "127.0.10.3", "127.255.10.3",
                (("app", "backend"), ("version", "v1")), "backend")
ECHO = Proxy(ProxyType.SIDECAR, "echo", "default", "127.0.10.6", "127.255.10.6",
             (("app", "echo"),), "echo")


def snapshot() -> MeshSnapshot:
    result = load_paths([ROOT / "examples" / "hello", ROOT / "tests" / "golden" / "authz"])
    assert result.errors == []
    return MeshSnapshot.build(1, result.resources,
                              mesh_config=MeshConfig.from_objects(result.unmanaged))


def test_filters_run_deny_then_allow_then_audit() -> None:
    names = [name for name, _ in http_rbac_filters(snapshot(), BACKEND)]
    assert names == ["envoy.filters.http.rbac.deny", "envoy.filters.http.rbac.allow",
                     "envoy.filters.http.rbac.audit"]


def test_each_rule_is_a_policy_named_after_it_and_dry_run_is_shadowed() -> None:
    [deny, allow, _] = [config for _, config in http_rbac_filters(snapshot(), BACKEND)]
    assert isinstance(deny, http_rbac_pb2.RBAC) and isinstance(allow, http_rbac_pb2.RBAC)
    assert sorted(deny.rules.policies) == ["ns[default]-policy[deny-admin]-rule[0]",
                                           "ns[default]-policy[deny-admin]-rule[1]"]
    assert sorted(deny.shadow_rules.policies) == [
        "ns[default]-policy[would-deny-delete]-rule[0]"]
    assert sorted(allow.rules.policies) == ["ns[default]-policy[allow-frontend]-rule[0]"]


def test_an_allow_rule_with_http_only_fields_matches_nothing_on_tcp() -> None:
    filters = dict(network_rbac_filters(snapshot(), ECHO, 9000))
    allow = filters["envoy.filters.network.rbac.allow"]
    assert sorted(allow.rules.policies) == [  # type: ignore[attr-defined]
        "ns[default]-policy[echo-only-client]-rule[0]"]


def test_rbac_matches_golden_and_real_envoy_accepts_it() -> None:
    snap = snapshot()
    check_golden("../authz/rbac-backend.json",
                 {name: MessageToDict(config) for name, config in
                  http_rbac_filters(snap, BACKEND)})
    for proxy in (BACKEND, ECHO):
        out = validate_bootstrap(sidecar_bootstrap(sidecar_resources(snap, proxy)))
        assert out.returncode == 0, out.stdout + out.stderr


def test_request_authentication_lets_tokenless_requests_through_and_fetches_remote_jwks() -> None:
    from heddle.translate.jwt import jwks_clusters, jwt_filter

    snap = snapshot()
    [(name, config)] = jwt_filter(snap, BACKEND)
    assert name == "envoy.filters.http.jwt_authn"
    assert sorted(config.providers) == ["origins-default-backend-jwt-0",
                                        "origins-default-backend-jwt-1"]
    requirements = config.rules[0].requires.requires_any.requirements
    assert requirements[-1].HasField("allow_missing")  # no token: unauthenticated, not 401
    remote = config.providers["origins-default-backend-jwt-1"].remote_jwks.http_uri
    [cluster] = jwks_clusters(snap, BACKEND)
    assert remote.cluster == cluster.name == "jwks|accounts.example.com|443"
    assert jwt_filter(snap, ECHO) == []  # the policy selects only the backend


def test_custom_policies_send_only_matching_requests_to_the_provider() -> None:
    from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2

    from heddle.translate.authz import custom_filters

    [(marks_name, marks), (name, ext_authz)] = custom_filters(snapshot(), BACKEND)
    assert (marks_name, name) == ("envoy.filters.http.rbac.custom", "envoy.filters.http.ext_authz")
    assert list(marks.shadow_rules.policies) == [  # type: ignore[attr-defined]
        "istio-ext-authz-ns[default]-policy[ext-authz-protected]-rule[0]"]
    assert isinstance(ext_authz, ext_authz_pb2.ExtAuthz)
    assert ext_authz.http_service.server_uri.cluster == (
        "outbound|8000||ext-authz.default.svc.cluster.local")


def test_custom_with_an_unknown_provider_fails_closed() -> None:
    from heddle.translate.authz import custom_filters

    snap = snapshot()
    no_providers = MeshSnapshot.build(2, snap.resources())  # mesh config without the provider
    [(_, deny)] = custom_filters(no_providers, BACKEND)
    assert deny.rules.action == 1  # type: ignore[attr-defined]  # DENY


def rules_of(policy: str, proxy: Proxy = BACKEND) -> dict[str, object]:
    """The enforced RBAC policies for `proxy` from one AuthorizationPolicy, as dicts."""
    import textwrap

    from heddle.api.loader import load_text

    result = load_text(textwrap.dedent(policy), "policy.yaml")
    assert result.errors == [], result.errors
    hello = load_paths([ROOT / "examples" / "hello"])
    snap = MeshSnapshot.build(1, [*hello.resources, *result.resources])
    [(_, config)] = http_rbac_filters(snap, proxy)
    assert isinstance(config, http_rbac_pb2.RBAC)
    return {name: MessageToDict(p) for name, p in config.rules.policies.items()}


def authority(value: str) -> dict[str, object]:
    return {"header": {"name": ":authority", **value}}  # type: ignore[dict-item]


def test_hosts_match_the_authority_as_sent_ignoring_case_with_no_port_implied() -> None:
    """Istio's host matcher: exact, `prefix*`, `*suffix` (ignore_case), `*` present; `backend`
    does not take `backend:9090`, which a policy asks for with `backend:*`."""
    [rule] = rules_of("""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: hosts}
        spec:
          selector: {matchLabels: {app: backend}}
          rules:
          - to:
            - operation:
                hosts: [backend, "backend:*", "*.cluster.local", "*"]
                notHosts: [Admin.example.com]
        """).values()
    hosts, not_hosts = rule["permissions"][0]["andRules"]["rules"]  # type: ignore[index]
    assert hosts["orRules"]["rules"] == [
        authority({"stringMatch": {"exact": "backend", "ignoreCase": True}}),
        authority({"stringMatch": {"prefix": "backend:", "ignoreCase": True}}),
        authority({"stringMatch": {"suffix": ".cluster.local", "ignoreCase": True}}),
        authority({"presentMatch": True}),
    ]
    assert not_hosts == {"notRule": authority(
        {"stringMatch": {"exact": "Admin.example.com", "ignoreCase": True}})}


def test_a_service_account_without_namespace_is_in_the_policys_namespace() -> None:
    """As Istio reads serviceAccounts (and source.serviceAccount): `SA` alone is the policy's
    namespace's account, never one of the same name elsewhere."""
    import re

    [rule] = rules_of("""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: accounts, namespace: default}
        spec:
          selector: {matchLabels: {app: backend}}
          rules:
          - from: [{source: {serviceAccounts: [client, payments/api]}}]
            when: [{key: source.serviceAccount, values: [frontend]}]
        """).values()
    accounts, when = rule["principals"][0]["andIds"]["ids"]  # type: ignore[index]
    patterns = [p["authenticated"]["principalName"]["safeRegex"]["regex"]
                for p in [*accounts["orIds"]["ids"], when]]

    def matches(pattern: str, identity: str) -> bool:  # Envoy matches the whole string
        return re.fullmatch(pattern, identity) is not None

    client, api, frontend = patterns
    assert matches(client, "spiffe://cluster.local/ns/default/sa/client")
    assert not matches(client, "spiffe://cluster.local/ns/payments/sa/client")
    assert not matches(client, "spiffe://cluster.local/ns/default/sa/client-2")
    assert matches(api, "spiffe://cluster.local/ns/payments/sa/api")
    assert not matches(api, "spiffe://cluster.local/ns/default/sa/api")
    assert matches(frontend, "spiffe://cluster.local/ns/default/sa/frontend")
    assert not matches(frontend, "spiffe://cluster.local/ns/other/sa/frontend")


def test_a_service_account_matches_only_the_exact_spiffe_path() -> None:
    principal = authz._service_account("default", "admin")
    pattern = principal.authenticated.principal_name.safe_regex.regex
    assert re.fullmatch(pattern, "spiffe://cluster.local/ns/default/sa/admin")
    assert not re.fullmatch(pattern,
                                   "spiffe://cluster.local/ns/attacker/sa/x/ns/default/sa/admin")
