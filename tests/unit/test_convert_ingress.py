"""`heddle convert ingress`: Ingresses for ingress-nginx become the Gateway API resources that
serve the same requests the same way, and whatever cannot is listed with its reason and
file:line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from heddle.api.loader import load_text
from heddle.api.yaml_documents import read_documents
from heddle.convert.findings import Finding, Verdict
from heddle.convert.ingress import Conversion, ConvertOptions, convert
from heddle.convert.output import manifests_yaml

HEDDLE = str(Path(sys.executable).with_name("heddle"))
N = "nginx.ingress.kubernetes.io/"


def ingress(name: str = "web", host: str = "example.com", paths: str = "- {path: /, "
            "pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}",
            annotations: dict[str, str] | None = None, tls: str = "",
            spec_extra: str = "") -> str:
    notes = "".join(f"\n    {k}: {v!r}" for k, v in (annotations or {}).items())
    body = f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: shop
  annotations: {{}}{notes}
spec:
  ingressClassName: nginx
{spec_extra}  rules:
  - host: {host}
    http:
      paths:
{dedent(paths).strip().replace(chr(10), chr(10) + "      ").join(["      ", ""])}
"""
    if notes:
        body = body.replace("annotations: {}", "annotations:")
    return body + (f"  tls:\n{tls}" if tls else "")


def run(*documents: str, options: ConvertOptions | None = None) -> Conversion:
    docs, problems = read_documents("---\n".join(documents), "in.yaml")
    assert problems == []
    result = convert(docs, options)
    # Whatever is converted passes `heddle validate`'s checks (schemas and CEL rules).
    loaded = load_text(manifests_yaml(result.manifests), "out.yaml")
    assert loaded.errors == [], "\n".join(map(str, loaded.errors))
    return result


def only(result: Conversion, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [m for m in result.manifests if m["kind"] == kind
             and (name is None or m["metadata"]["name"] == name)]
    assert len(found) == 1, [m["metadata"]["name"] for m in result.manifests]
    return found[0]


def paths_of(route: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["path"]["type"], m["path"]["value"]) for r in route["spec"]["rules"]
            for m in r.get("matches", [])]


def findings(result: Conversion, verdict: Verdict) -> list[Finding]:
    return [f for f in result.findings if f.verdict is verdict]


def lost(result: Conversion) -> dict[str, str]:
    """Annotation (or field) -> reason, for each thing not converted."""
    return {f.subject.split("=")[0]: f.reason for f in findings(result, Verdict.NOT_CONVERTED)}


# --- Gateways and listeners -------------------------------------------------------------------

def test_one_gateway_per_class_and_namespace_with_an_http_listener_and_the_chosen_class() -> None:
    result = run(ingress("a"), ingress("b", "b.example.com"),
                 ingress("c", "c.example.com").replace("ingressClassName: nginx",
                                                       "ingressClassName: internal"),
                 options=ConvertOptions(gateway_class="mesh-gw"))
    gateways = [m for m in result.manifests if m["kind"] == "Gateway"]
    assert [(g["metadata"]["name"], g["spec"]["gatewayClassName"]) for g in gateways] == [
        ("internal", "mesh-gw"), ("nginx", "mesh-gw")]
    assert gateways[1]["spec"]["listeners"] == [{"name": "http", "port": 80,
                                                 "protocol": "HTTP"}]
    assert result.findings == ()


def test_an_ingress_without_a_class_joins_the_default_class_gateway() -> None:
    result = run(ingress().replace("  ingressClassName: nginx\n", ""),
                 options=ConvertOptions(default_ingress_class="public"))
    assert only(result, "Gateway")["metadata"]["name"] == "public"


def test_spec_tls_makes_an_https_listener_per_host_naming_its_secrets() -> None:
    tls = "  - hosts: [example.com]\n    secretName: example-tls\n"
    result = run(ingress(tls=tls, annotations={N + "ssl-redirect": "false"}))
    listeners = only(result, "Gateway")["spec"]["listeners"]
    assert listeners[1] == {
        "name": "https-example-com", "hostname": "example.com", "port": 443,
        "protocol": "HTTPS", "tls": {"mode": "Terminate", "certificateRefs": [
            {"kind": "Secret", "name": "example-tls"}]}}
    route = only(result, "HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "http"},
                                           {"name": "nginx", "sectionName": "https-example-com"}]


def test_a_tls_entry_without_a_secret_makes_no_listener_and_says_why() -> None:
    result = run(ingress(tls="  - hosts: [example.com]\n"))
    assert len(only(result, "Gateway")["spec"]["listeners"]) == 1
    assert "names no secretName" in lost(result)["spec.tls[0]"]


# --- paths ------------------------------------------------------------------------------------

def test_path_types_map_as_ingress_nginx_reads_them() -> None:
    result = run(ingress(paths="""
        - {path: /exact, pathType: Exact, backend: {service: {name: a, port: {number: 1}}}}
        - {path: /prefix, pathType: Prefix, backend: {service: {name: a, port: {number: 1}}}}
        - {path: /impl, pathType: ImplementationSpecific,
           backend: {service: {name: a, port: {number: 1}}}}
        - {path: /unset, backend: {service: {name: a, port: {number: 1}}}}
        """))
    # in nginx's location order: longest path first
    assert paths_of(only(result, "HTTPRoute")) == [
        ("PathPrefix", "/prefix"), ("PathPrefix", "/unset"), ("Exact", "/exact"),
        ("PathPrefix", "/impl")]


def test_use_regex_makes_every_path_of_the_host_a_case_insensitive_anchored_regex() -> None:
    result = run(
        ingress("regex", paths="- {path: '/api/v[0-9]+', pathType: ImplementationSpecific, "
                "backend: {service: {name: api, port: {number: 80}}}}",
                annotations={N + "use-regex": "true"}),
        ingress("plain", paths="- {path: /static, pathType: Exact, "
                "backend: {service: {name: files, port: {number: 80}}}}"),
        ingress("other-host", "other.example.com"))
    assert paths_of(only(result, "HTTPRoute", "plain-example-com")) == [
        ("RegularExpression", "(?i)/api/v[0-9]+.*"), ("RegularExpression", "(?i)/static.*")]
    assert paths_of(only(result, "HTTPRoute", "other-host-other-example-com")) == [
        ("PathPrefix", "/")]


def test_a_path_re2_cannot_compile_is_left_out_and_listed() -> None:
    result = run(ingress(paths="- {path: '/(?!x)a', pathType: ImplementationSpecific, "
                         "backend: {service: {name: a, port: {number: 1}}}}",
                         annotations={N + "use-regex": "true"}))
    assert "RE2" in lost(result)["path '/(?!x)a'"]
    assert [m["kind"] for m in result.manifests] == ["Gateway"]


# --- rewrite-target ---------------------------------------------------------------------------

def test_rewrite_target_without_groups_replaces_the_full_path() -> None:
    result = run(ingress(paths="- {path: /old, pathType: Prefix, "
                         "backend: {service: {name: a, port: {number: 1}}}}",
                         annotations={N + "rewrite-target": "/new"}))
    rule = only(result, "HTTPRoute")["spec"]["rules"][0]
    assert rule["matches"] == [{"path": {"type": "RegularExpression", "value": "(?i)/old.*"}}]
    assert rule["filters"] == [{"type": "URLRewrite", "urlRewrite": {"path": {
        "type": "ReplaceFullPath", "replaceFullPath": "/new"}}}]
    assert result.findings == ()


def test_the_strip_a_prefix_idiom_becomes_a_prefix_rewrite_with_a_note() -> None:
    result = run(ingress(paths="- {path: '/something(/|$)(.*)', pathType: "
                         "ImplementationSpecific, backend: {service: {name: a, port: "
                         "{number: 1}}}}",
                         annotations={N + "rewrite-target": "/$2", N + "use-regex": "true"}))
    rule = only(result, "HTTPRoute")["spec"]["rules"][0]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/something"}}]
    assert rule["filters"][0]["urlRewrite"]["path"] == {"type": "ReplacePrefixMatch",
                                                        "replacePrefixMatch": "/"}
    [note] = findings(result, Verdict.NOTE)
    assert "case-sensitively" in note.reason
    assert lost(result) == {}


def test_rewrite_target_with_other_regex_groups_is_listed_and_the_path_still_routed() -> None:
    result = run(ingress(paths="- {path: '/foo/(.*)', pathType: Prefix, "
                         "backend: {service: {name: a, port: {number: 1}}}}",
                         annotations={N + "rewrite-target": "/$1"}))
    rule = only(result, "HTTPRoute")["spec"]["rules"][0]
    assert "filters" not in rule and rule["backendRefs"] == [{"name": "a", "port": 1}]
    assert "cannot substitute regex groups" in lost(result)[N + "rewrite-target"]


# --- ssl-redirect -----------------------------------------------------------------------------

TLS = "  - hosts: [example.com]\n    secretName: example-tls\n"
REDIRECT = [{"type": "RequestRedirect",
             "requestRedirect": {"scheme": "https", "statusCode": 308}}]


def test_a_host_with_tls_redirects_plain_http_to_https_with_308() -> None:
    result = run(ingress(tls=TLS))
    served = only(result, "HTTPRoute", "web-example-com")
    plain = only(result, "HTTPRoute", "web-example-com-http")
    assert served["spec"]["parentRefs"] == [{"name": "nginx",
                                             "sectionName": "https-example-com"}]
    assert plain["spec"]["parentRefs"] == [{"name": "nginx", "sectionName": "http"}]
    assert plain["spec"]["rules"] == [{"matches": [{"path": {"type": "PathPrefix",
                                                             "value": "/"}}],
                                       "filters": REDIRECT}]


def test_force_ssl_redirect_redirects_without_tls_too() -> None:
    result = run(ingress(annotations={N + "force-ssl-redirect": "true"}))
    assert only(result, "HTTPRoute")["spec"]["rules"][0]["filters"] == REDIRECT


# --- canary -----------------------------------------------------------------------------------

CANARY_PATH = ("- {path: /, pathType: Prefix, "
               "backend: {service: {name: web-v2, port: {number: 80}}}}")


def test_canary_weight_splits_the_main_ingress_rule() -> None:
    result = run(ingress(), ingress("web-canary", paths=CANARY_PATH, annotations={
        N + "canary": "true", N + "canary-weight": "20"}))
    assert only(result, "HTTPRoute")["spec"]["rules"] == [{
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [{"name": "web", "port": 80, "weight": 80},
                        {"name": "web-v2", "port": 80, "weight": 20}]}]


def test_canary_weight_total_sets_the_scale() -> None:
    result = run(ingress(), ingress("web-canary", paths=CANARY_PATH, annotations={
        N + "canary": "true", N + "canary-weight": "5", N + "canary-weight-total": "1000"}))
    backends = only(result, "HTTPRoute")["spec"]["rules"][0]["backendRefs"]
    assert [b["weight"] for b in backends] == [995, 5]


def test_canary_by_header_sends_always_to_the_canary_and_never_to_the_main() -> None:
    result = run(ingress(), ingress("web-canary", paths=CANARY_PATH, annotations={
        N + "canary": "true", N + "canary-by-header": "X-Canary"}))
    rules = only(result, "HTTPRoute")["spec"]["rules"]
    assert [(r["matches"][0].get("headers"), [b["name"] for b in r["backendRefs"]])
            for r in rules] == [
        ([{"name": "X-Canary", "value": "always"}], ["web-v2"]),
        ([{"name": "X-Canary", "value": "never"}], ["web"]),
        (None, ["web"])]


def test_canary_by_header_value_matches_that_value_and_keeps_the_weight() -> None:
    result = run(ingress(), ingress("web-canary", paths=CANARY_PATH, annotations={
        N + "canary": "true", N + "canary-by-header": "X-Env",
        N + "canary-by-header-value": "staging", N + "canary-weight": "10"}))
    rules = only(result, "HTTPRoute")["spec"]["rules"]
    assert rules[0]["matches"][0]["headers"] == [{"name": "X-Env", "value": "staging"}]
    assert [b.get("weight") for b in rules[1]["backendRefs"]] == [90, 10]
    assert len(rules) == 2


def test_a_canary_without_a_main_ingress_is_listed() -> None:
    result = run(ingress("lonely", paths=CANARY_PATH, annotations={N + "canary": "true"}))
    assert "no Ingress without canary serves host example.com" in lost(result)[N + "canary"]


def test_a_canary_value_that_is_not_a_boolean_is_ignored_as_ingress_nginx_does() -> None:
    result = run(ingress(), ingress("web-canary", paths=CANARY_PATH, annotations={
        N + "canary": '\\"true\\"', N + "canary-weight": "50"}))
    ignored = {f.subject.split("=")[0] for f in findings(result, Verdict.IGNORED)}
    assert ignored == {N + "canary", N + "canary-weight"}
    # ... so it is a second Ingress for the same path, which only one can serve
    assert "also served by Ingress shop/web" in lost(result)["path '/' of host example.com"]


# --- backend-protocol -------------------------------------------------------------------------

def test_backend_protocol_grpc_on_a_whole_host_is_a_grpc_route() -> None:
    result = run(ingress(annotations={N + "backend-protocol": "GRPC"}))
    route = only(result, "GRPCRoute")
    assert route["spec"]["rules"] == [{"backendRefs": [{"name": "web", "port": 80}]}]
    assert [m for m in result.manifests if m["kind"] == "HTTPRoute"] == []


def test_grpc_paths_naming_a_service_match_that_service() -> None:
    result = run(ingress(paths="- {path: /helloworld.Greeter, pathType: Prefix, "
                         "backend: {service: {name: g, port: {number: 50051}}}}",
                         annotations={N + "backend-protocol": "GRPC"}))
    assert only(result, "GRPCRoute")["spec"]["rules"][0]["matches"] == [
        {"method": {"type": "Exact", "service": "helloworld.Greeter"}}]


def test_grpc_beside_plain_http_on_one_host_stays_an_http_route_and_says_why() -> None:
    result = run(ingress(annotations={N + "backend-protocol": "GRPC"}),
                 ingress("files", paths="- {path: /files, pathType: Prefix, "
                         "backend: {service: {name: files, port: {number: 80}}}}"))
    assert len(only(result, "HTTPRoute")["spec"]["rules"]) == 2
    assert "does not merge GRPCRoute and HTTPRoute" in lost(result)[N + "backend-protocol"]


@pytest.mark.parametrize(("protocol", "reason"), [("HTTPS", "BackendTLSPolicy"),
                                                  ("FCGI", "FastCGI")])
def test_backend_protocols_gateway_api_cannot_speak_are_listed(protocol: str,
                                                               reason: str) -> None:
    result = run(ingress(annotations={N + "backend-protocol": protocol}))
    assert reason in lost(result)[N + "backend-protocol"]


# --- CORS -------------------------------------------------------------------------------------

def test_enable_cors_alone_is_a_cors_filter_with_ingress_nginx_defaults() -> None:
    result = run(ingress(annotations={N + "enable-cors": "true"}))
    assert only(result, "HTTPRoute")["spec"]["rules"][0]["filters"] == [{
        "type": "CORS", "cors": {
            "allowOrigins": ["*"], "allowCredentials": True,
            "allowMethods": ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"],
            "allowHeaders": ["DNT", "Keep-Alive", "User-Agent", "X-Requested-With",
                             "If-Modified-Since", "Cache-Control", "Content-Type", "Range",
                             "Authorization"],
            "maxAge": 1728000}}]


def test_the_cors_family_sets_each_field() -> None:
    result = run(ingress(annotations={
        N + "enable-cors": "true", N + "cors-allow-origin": "https://a.com, https://*.b.com",
        N + "cors-allow-methods": "get, POST", N + "cors-allow-headers": "X-One",
        N + "cors-expose-headers": "X-Two", N + "cors-allow-credentials": "false",
        N + "cors-max-age": "60"}))
    assert only(result, "HTTPRoute")["spec"]["rules"][0]["filters"][0]["cors"] == {
        "allowOrigins": ["https://a.com", "https://*.b.com"], "allowCredentials": False,
        "allowMethods": ["GET", "POST"], "allowHeaders": ["X-One"], "exposeHeaders": ["X-Two"],
        "maxAge": 60}


def test_cors_annotations_without_enable_cors_are_ignored_as_ingress_nginx_does() -> None:
    result = run(ingress(annotations={N + "cors-allow-origin": "https://a.com"}))
    assert "filters" not in only(result, "HTTPRoute")["spec"]["rules"][0]
    [ignored] = findings(result, Verdict.IGNORED)
    assert "enable-cors is not" in ignored.reason


def test_an_origin_the_cors_filter_refuses_is_left_out_and_listed() -> None:
    result = run(ingress(annotations={N + "enable-cors": "true",
                                      N + "cors-allow-origin": "https://a.com, a.com"}))
    assert only(result, "HTTPRoute")["spec"]["rules"][0]["filters"][0]["cors"][
        "allowOrigins"] == ["https://a.com"]
    assert lost(result)[N + "cors-allow-origin"].startswith("a.com: not an origin")


# --- rate limits and timeouts -----------------------------------------------------------------

def test_rate_limits_are_listed_until_heddle_has_a_rate_limit_policy() -> None:
    result = run(ingress(annotations={N + "limit-rps": "10", N + "limit-rpm": "600"}))
    reasons = lost(result)
    assert set(reasons) == {N + "limit-rps", N + "limit-rpm"}
    assert all("no rate-limit policy" in r for r in reasons.values())


def test_proxy_timeouts_have_no_faithful_httproute_timeout_and_are_listed() -> None:
    result = run(ingress(annotations={N + "proxy-connect-timeout": "5",
                                      N + "proxy-read-timeout": "60",
                                      N + "proxy-send-timeout": "60"}))
    reasons = lost(result)
    assert "connection-establishment" in reasons[N + "proxy-connect-timeout"]
    assert "between two reads" in reasons[N + "proxy-read-timeout"]
    assert "between two writes" in reasons[N + "proxy-send-timeout"]
    assert "timeouts" not in only(result, "HTTPRoute")["spec"]["rules"][0]


# --- app-root and redirects -------------------------------------------------------------------

def test_app_root_redirects_exactly_slash_with_302() -> None:
    result = run(ingress(annotations={N + "app-root": "/app1"}))
    assert only(result, "HTTPRoute")["spec"]["rules"][-1] == {
        "matches": [{"path": {"type": "Exact", "value": "/"}}],
        "filters": [{"type": "RequestRedirect", "requestRedirect": {
            "path": {"type": "ReplaceFullPath", "replaceFullPath": "/app1"},
            "statusCode": 302}}]}
    # Side by side with NGINX (tests/e2e/test_ingress_nginx_parity.py), the one difference.
    [note] = findings(result, Verdict.NOTE)
    assert note.subject.startswith(N + "app-root=") and "drops the query" in note.reason


def test_permanent_redirect_sends_every_path_to_the_url_with_301_or_its_code() -> None:
    result = run(ingress(annotations={N + "permanent-redirect": "https://new.example.org/x"}),
                 ingress("coded", "b.example.com", annotations={
                     N + "permanent-redirect": "http://new.example.org:8080",
                     N + "permanent-redirect-code": "308"}))
    first = only(result, "HTTPRoute", "web-example-com")["spec"]["rules"][0]
    assert first["filters"] == [{"type": "RequestRedirect", "requestRedirect": {
        "scheme": "https", "hostname": "new.example.org",
        "path": {"type": "ReplaceFullPath", "replaceFullPath": "/x"}, "statusCode": 301}}]
    assert "backendRefs" not in first
    coded = only(result, "HTTPRoute", "coded-b-example-com")["spec"]["rules"][0]
    assert coded["filters"][0]["requestRedirect"] == {
        "scheme": "http", "hostname": "new.example.org", "port": 8080,
        "path": {"type": "ReplaceFullPath", "replaceFullPath": "/"}, "statusCode": 308}


def test_temporal_redirect_wins_and_request_uri_keeps_the_path() -> None:
    result = run(ingress(annotations={N + "temporal-redirect": "https://b.org$request_uri",
                                      N + "permanent-redirect": "https://c.org"}))
    assert only(result, "HTTPRoute")["spec"]["rules"][0]["filters"][0]["requestRedirect"] == {
        "scheme": "https", "hostname": "b.org", "statusCode": 302}
    [ignored] = findings(result, Verdict.IGNORED)
    assert ignored.subject.startswith(N + "permanent-redirect=")


# --- what is listed, and where ----------------------------------------------------------------

def test_each_finding_names_the_annotation_its_value_and_its_file_line() -> None:
    result = run(ingress(annotations={N + "enable-cors": "true", N + "limit-rps": "5"}))
    [finding] = result.findings
    assert str(finding) == (
        f'in.yaml:8:5: Ingress shop/web: not converted: {N}limit-rps="5": Heddle has no '
        "rate-limit policy for Gateway API routes yet; this converts to one once it exists")
    assert result.not_converted() == {finding.resource: [finding]}


def test_annotations_of_other_controllers_are_listed() -> None:
    result = run(ingress(annotations={"nginx.org/rewrites": "x", "example.com/thing": "y",
                                      "kubernetes.io/ingress.class": "nginx"}))
    reasons = lost(result)
    assert "F5's NGINX Ingress Controller" in reasons["nginx.org/rewrites"]
    assert "not an ingress-nginx annotation" in reasons["example.com/thing"]
    assert "kubernetes.io/ingress.class" not in reasons


# --- inputs -----------------------------------------------------------------------------------

V1BETA1 = """\
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: old, namespace: shop}
spec:
  backend: {serviceName: fallback, servicePort: 8080}
  rules:
  - host: example.com
    http:
      paths:
      - path: /api
        backend: {serviceName: api, servicePort: http}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  ports: [{name: http, port: 9090}]
"""


def test_v1beta1_backends_and_named_ports_of_services_among_the_inputs() -> None:
    result = run(V1BETA1, SERVICE)
    rules = only(result, "HTTPRoute")["spec"]["rules"]
    assert [(r["matches"][0]["path"]["value"], r["backendRefs"]) for r in rules] == [
        ("/api", [{"name": "api", "port": 9090}]),
        ("/", [{"name": "fallback", "port": 8080}])]  # the default backend serves `/`


def test_a_named_port_without_its_service_is_left_out_and_listed() -> None:
    result = run(V1BETA1)
    assert "is named" in lost(result)["spec.rules[0].http.paths[0].backend"]


def test_a_placeholder_host_is_left_out_and_listed() -> None:
    result = run(ingress(host="'__INGRESS_HOST__'"))
    assert "not a DNS name" in lost(result)["spec.rules[0].host"]
    assert [m["kind"] for m in result.manifests] == ["Gateway"]


def test_a_host_with_more_than_sixteen_rules_is_split_into_routes() -> None:
    paths = "\n".join(f"- {{path: /p{i:02}, pathType: Prefix, backend: {{service: "
                      f"{{name: a, port: {{number: 1}}}}}}}}" for i in range(20))
    result = run(ingress(paths=paths))
    routes = [m for m in result.manifests if m["kind"] == "HTTPRoute"]
    assert [(r["metadata"]["name"], len(r["spec"]["rules"])) for r in routes] == [
        ("web-example-com", 16), ("web-example-com-2", 4)]


def test_output_is_the_same_whatever_the_order_of_independent_ingresses() -> None:
    docs = [ingress("a", "a.example.com", tls=TLS.replace("example.com", "a.example.com")),
            ingress("b", "b.example.com", annotations={N + "enable-cors": "true"}),
            ingress("c", "c.example.com", annotations={N + "use-regex": "true"})]
    forward = manifests_yaml(run(*docs).manifests)
    assert manifests_yaml(run(*reversed(docs)).manifests) == forward


# --- the command ------------------------------------------------------------------------------

def test_the_command_prints_yaml_lists_findings_and_writes_a_directory(tmp_path: Path) -> None:
    source = tmp_path / "in.yaml"
    source.write_text(ingress(annotations={N + "limit-rps": "5"}))
    out = subprocess.run([HEDDLE, "convert", "ingress", "-f", str(source)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "kind: HTTPRoute" in out.stdout
    assert f'{source}:7:5: Ingress shop/web: not converted: {N}limit-rps="5"' in out.stderr
    assert "1 Ingresses to 1 Gateway, 1 HTTPRoute: 0 converted cleanly, 1 with something" in (
        out.stderr)
    written = subprocess.run([HEDDLE, "convert", "ingress", "-f", str(source), "-o",
                              str(tmp_path / "out")], capture_output=True, text=True,
                             timeout=60)
    assert written.returncode == 0 and written.stdout == ""
    assert (tmp_path / "out" / "shop-nginx.yaml").read_text() == out.stdout


def test_the_command_refuses_input_without_an_ingress(tmp_path: Path) -> None:
    (tmp_path / "svc.yaml").write_text(SERVICE)
    out = subprocess.run([HEDDLE, "convert", "ingress", "-f", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith("error: no Ingress")
