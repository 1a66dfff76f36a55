"""Valid Istio configuration that Heddle once refused (issue 22's valid-rejected classes),
each accepted now as Istio accepts it, beside the near miss Istio still refuses; and the
warnings Istio gives on valid config that cannot do what it says."""

from __future__ import annotations

from textwrap import dedent, indent

import pytest

from heddle.api.diagnostics import Severity
from heddle.api.loader import load_text

API = {"VirtualService": "networking.istio.io/v1", "DestinationRule": "networking.istio.io/v1",
       "Gateway": "networking.istio.io/v1", "Sidecar": "networking.istio.io/v1",
       "AuthorizationPolicy": "security.istio.io/v1",
       "RequestAuthentication": "security.istio.io/v1",
       "EnvoyFilter": "networking.istio.io/v1alpha3"}


def diagnostics(kind: str, spec: str) -> list[tuple[Severity, str]]:
    text = (f"apiVersion: {API[kind]}\nkind: {kind}\nmetadata: {{name: x, namespace: ns}}\n"
            f"spec:\n{indent(dedent(spec).strip(), '  ')}\n")
    return [(d.severity, f"{d.field}: {d.message}") for d in load_text(text, "x.yaml").diagnostics
            if d.severity is not Severity.INFO]


def errors(kind: str, spec: str) -> list[str]:
    return [m for s, m in diagnostics(kind, spec) if s is Severity.ERROR]


def test_a_host_whose_first_label_is_star_dash_is_a_valid_destination() -> None:
    assert errors("DestinationRule", "host: '*-foo.bar.com'") == []
    assert errors("VirtualService", """
        hosts: [foo.bar]
        http: [{route: [{destination: {host: "*-foo.baz"}}]}]
        """) == []
    assert errors("VirtualService", """
        hosts: [foo.bar]
        http: [{route: [{destination: {host: "foo.*.baz"}}]}]
        """) != []  # a wildcard only in the first label


def test_a_gateway_bound_service_may_route_the_auto_passthrough_sni_name() -> None:
    spec = """
        hosts: [outbound_.15010_._.istiod.istio-system.svc.cluster.local]
        gateways: [ns1/gateway]
        tls:
        - match: [{sniHosts: [outbound_.15010_._.istiod.istio-system.svc.cluster.local]}]
          route: [{destination: {host: istiod.istio-system.svc.cluster.local}}]
        """
    assert errors("VirtualService", spec) == []
    # Only where it is bound to a gateway: the mesh never sees those names.
    assert errors("VirtualService", spec.replace("[ns1/gateway]", "[mesh]")) != []


def test_without_headers_regex_star_means_the_header_is_present() -> None:
    spec = """
        hosts: [foo.bar]
        http:
        - match: [{withoutHeaders: {x-debug: {regex: "*"}}}]
          route: [{destination: {host: foo.bar}}]
        """
    assert errors("VirtualService", spec) == []
    assert errors("VirtualService", spec.replace('"*"', '"+"')) != []  # not RE2 either way


def test_a_gateway_server_bound_to_a_unix_socket_listens_on_port_zero() -> None:
    spec = """
        servers:
        - port: {number: 0, name: uds, protocol: HTTP}
          hosts: ["*"]
          bind: unix:///var/run/gateway.sock
        """
    found = diagnostics("Gateway", spec)
    assert [m for s, m in found if s is Severity.ERROR] == []
    # Heddle's gateways do not listen on sockets: it says so rather than drop it silently.
    assert any("unix domain sockets" in m for s, m in found if s is Severity.WARNING)
    assert errors("Gateway", spec.replace("number: 0", "number: 80")) == [
        "spec.servers[0].port.number: the port number must be 0 for a unix domain socket"]
    assert errors("Gateway", spec.replace("bind: unix:///var/run/gateway.sock", "")) == [
        "spec.servers[0].port.number: port number 0 must be in the range 1..65535"]


def test_a_sidecar_egress_listener_on_a_unix_socket_has_port_zero() -> None:
    spec = """
        egress:
        - port: {number: 0, protocol: HTTP, name: uds}
          bind: unix:///@foo/bar/com
          hosts: ["*/*"]
        """
    assert errors("Sidecar", spec) == []
    assert errors("Sidecar", spec.replace("unix:///@foo/bar/com", "10.0.0.1")) == [
        "spec.egress[0].bind: a listener on port 0 needs a unix domain socket bind"]


def test_a_sidecar_egress_host_may_exclude_a_namespace_with_a_tilde() -> None:
    assert errors("Sidecar", 'egress: [{hosts: ["*/*", "~ns1/*"]}]') == []
    assert errors("Sidecar", 'egress: [{hosts: ["*/*", "~NS_1/*"]}]') != []


@pytest.mark.parametrize("path", ["/foo/{**}/bar", "/store/{**}/cart/items", "/{*}/{**}/x"])
def test_literal_segments_may_follow_a_double_star_template(path: str) -> None:
    assert errors("AuthorizationPolicy", f"rules: [{{to: [{{operation: {{paths: ['{path}']}}}}]}}]"
                  ) == []


def test_no_template_operator_may_follow_a_double_star() -> None:
    [error] = errors("AuthorizationPolicy",
                     "rules: [{to: [{operation: {paths: ['/a/{**}/{*}']}}]}]")
    assert "{**} is not the last operator" in error


def test_a_jwt_rule_may_name_only_its_jwks_uri() -> None:
    assert errors("RequestAuthentication",
                  "jwtRules: [{jwksUri: 'https://example.com/.well-known/jwks.json'}]") == []
    assert errors("RequestAuthentication", "jwtRules: [{audiences: [a]}]") == [
        "spec.jwtRules[0]: a JWT rule needs an issuer or a jwksUri"]


def test_an_envoy_filter_value_may_write_go_durations() -> None:
    assert errors("EnvoyFilter", """
        configPatches:
        - applyTo: CLUSTER
          patch: {operation: ADD, value: {name: extra, dns_refresh_rate: 500ms}}
        """) == []


def test_a_rule_after_one_without_matches_draws_istios_unreachable_warning() -> None:
    found = diagnostics("VirtualService", """
        hosts: [foo.bar]
        http:
        - route: [{destination: {host: foo.bar}}]
        - match: [{uri: {prefix: /a}}]
          route: [{destination: {host: foo.bar}}]
        """)
    assert found == [(Severity.WARNING, "spec.http[1]: rule #1 is never used (a rule without "
                                        "matches comes before it)")]


def test_a_match_an_earlier_prefix_covers_draws_istios_ineffective_warning() -> None:
    found = diagnostics("VirtualService", """
        hosts: [foo.bar]
        http:
        - match: [{uri: {prefix: /api/v1/product}}]
          route: [{destination: {host: foo.bar}}]
        - match: [{uri: {prefix: /api/v1/products}, method: {exact: GET}}]
          route: [{destination: {host: foo.baz}}]
        """)
    assert [s for s, _ in found] == [Severity.WARNING]
    assert "prefix /api/v1/products is never used" in found[0][1]
