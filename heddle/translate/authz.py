"""AuthorizationPolicy -> Envoy RBAC filters, with Istio's semantics.

Order on a request: DENY policies, then ALLOW policies (when any ALLOW policy applies, a request
must match one of them), with AUDIT policies logging alongside. Each rule of a policy becomes
one Envoy policy named `ns[NS]-policy[NAME]-rule[I]`, so a denied request's
%RESPONSE_CODE_DETAILS% names the rule that matched. Policies annotated
`istio.io/dry-run: "true"` go into shadow rules: evaluated and recorded, never enforced.

A rule: `from` sources OR'ed, `to` operations OR'ed, `when` conditions AND'ed; within a source
or operation the fields are AND'ed and each field's values OR'ed; `notX` negates the OR.

Which policies a proxy gets (`applicable_policies`) is Istio's attachment: sidecars and
gateways alike by selector (root namespace and their own), Gateway API gateways also by
`targetRefs` naming their Gateway.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from envoy.config.core.v3 import address_pb2, config_source_pb2, http_uri_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from envoy.type.matcher.v3 import metadata_pb2, path_pb2, regex_pb2, string_pb2, value_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from heddle.api import istio_defaults
from heddle.api.models import AuthorizationPolicySpec, RequestAuthenticationSpec
from heddle.api.models._generated.security_authorizationpolicy import (
    AuthorizationPolicySpecAction,
    AuthorizationPolicySpecRule,
    AuthorizationPolicySpecRuleFromItemSource,
    AuthorizationPolicySpecRuleToItemOperation,
)
from heddle.api.resource import Resource
from heddle.api.semantics.security import DRY_RUN_ANNOTATION, parse_go_bool
from heddle.api.specs import spec_of
from heddle.model.gateways import GATEWAY_API, GATEWAY_NAME_LABEL
from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.mtls import ROOT_NAMESPACE

JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD = "payload"  # where the JWT filter puts a verified token's claims

# Fields that only make sense for HTTP: on a TCP port, an ALLOW rule using one matches
# nothing, and a DENY rule ignores them (so it denies more), as Istio documents.
HTTP_ONLY_SOURCE = {"requestPrincipals", "notRequestPrincipals"}
HTTP_ONLY_OPERATION = {"hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"}
HTTP_ONLY_WHEN_PREFIXES = ("request.",)


RbacConfig = TypeVar("RbacConfig", http_rbac_pb2.RBAC, network_rbac_pb2.RBAC)


class _Unsupported(Exception):
    """A rule uses HTTP-only attributes on a TCP port."""


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def istio_string_match(value: str, ignore_case: bool = False) -> string_pb2.StringMatcher:
    """Istio's value syntax: `*` any non-empty, `abc*` prefix, `*abc` suffix, else exact."""
    if value == "*":
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=".+"))
    if value.endswith("*"):
        return string_pb2.StringMatcher(prefix=value[:-1], ignore_case=ignore_case)
    if value.startswith("*"):
        return string_pb2.StringMatcher(suffix=value[1:], ignore_case=ignore_case)
    return string_pb2.StringMatcher(exact=value, ignore_case=ignore_case)


def _spiffe_match(principal: str) -> string_pb2.StringMatcher:
    if principal == "*":
        return istio_string_match("*")
    if principal.startswith("*"):
        return string_pb2.StringMatcher(suffix=principal[1:])
    return istio_string_match("spiffe://" + principal)


def _namespace_match(namespace: str) -> string_pb2.StringMatcher:
    if namespace == "*":
        pattern = r"spiffe://[^/]+/ns/[^/]+/sa/.+"
    elif namespace.endswith("*"):
        pattern = rf"spiffe://[^/]+/ns/{re.escape(namespace[:-1])}[^/]*/sa/.+"
    elif namespace.startswith("*"):
        pattern = rf"spiffe://[^/]+/ns/[^/]*{re.escape(namespace[1:])}/sa/.+"
    else:
        pattern = rf"spiffe://[^/]+/ns/{re.escape(namespace)}/sa/.+"
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


def _cidr(value: str) -> address_pb2.CidrRange:
    network = ipaddress.ip_network(value, strict=False)
    return address_pb2.CidrRange(address_prefix=str(network.network_address),
                                 prefix_len={"value": network.prefixlen})


def _header(name: str, value: str, ignore_case: bool = False,
            ) -> route_components_pb2.HeaderMatcher:
    if value == "*":
        return route_components_pb2.HeaderMatcher(name=name, present_match=True)
    return route_components_pb2.HeaderMatcher(name=name,
                                              string_match=istio_string_match(value, ignore_case))


def _jwt_claim(path: list[str], value: str) -> metadata_pb2.MetadataMatcher:
    """A claim of the verified token: strings match as values, lists when they contain it."""
    matcher = metadata_pb2.MetadataMatcher(filter=JWT_FILTER)
    for key in [JWT_PAYLOAD, *path]:
        matcher.path.add(key=key)
    string = istio_string_match(value)
    matcher.value.CopyFrom(value_pb2.ValueMatcher(or_match=value_pb2.OrMatcher(value_matchers=[
        value_pb2.ValueMatcher(string_match=string),
        value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(
            one_of=value_pb2.ValueMatcher(string_match=string))),
    ])))
    return matcher


def _request_principal(value: str) -> rbac_pb2.Principal:
    """`ISS/SUB` of a verified JWT (`*` is any verified token)."""
    if value == "*":
        matcher = metadata_pb2.MetadataMatcher(filter=JWT_FILTER)
        matcher.path.add(key=JWT_PAYLOAD)
        matcher.value.present_match = True
        return rbac_pb2.Principal(metadata=matcher)
    issuer, _, subject = value.rpartition("/")
    if issuer.endswith("*") or not issuer:  # `*/sub` or a prefix: match the subject only
        return rbac_pb2.Principal(metadata=_jwt_claim(["sub"], subject or value))
    parts = [rbac_pb2.Principal(metadata=_jwt_claim(["iss"], issuer))]
    if subject != "*":
        parts.append(rbac_pb2.Principal(metadata=_jwt_claim(["sub"], subject)))
    return rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=parts))


def _claim_path(key: str) -> list[str]:
    """`request.auth.claims[groups]` -> ["groups"]; nested `[a][b]` -> ["a", "b"]."""
    return re.findall(r"\[([^\[\]]+)\]", key)


def _any_of_principals(items: list[rbac_pb2.Principal]) -> rbac_pb2.Principal:
    return items[0] if len(items) == 1 else rbac_pb2.Principal(
        or_ids=rbac_pb2.Principal.Set(ids=items))


def _any_of_permissions(items: list[rbac_pb2.Permission]) -> rbac_pb2.Permission:
    return items[0] if len(items) == 1 else rbac_pb2.Permission(
        or_rules=rbac_pb2.Permission.Set(rules=items))


def _service_account(namespace: str, value: str) -> rbac_pb2.Principal:
    """`NS/SA`, or `SA` in the policy's own `namespace`, as Istio reads a service account
    (never another namespace's account of the same name). The id must be exactly
    spiffe://TD/ns/NS/sa/SA: a looser pattern let spiffe://td/ns/a/sa/x/ns/NS/sa/SA pass."""
    account_namespace, _, account = value.partition("/") if "/" in value \
        else (namespace, "", value)
    pattern = rf"spiffe://[^/]+/ns/{re.escape(account_namespace)}/sa/{re.escape(account)}"
    return rbac_pb2.Principal(authenticated=rbac_pb2.Principal.Authenticated(
        principal_name=string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(
            regex=pattern))))


# Each builds the principal for one value of a source field (`namespace`: the policy's).
_SOURCE_FIELDS: dict[str, Callable[[str, str], rbac_pb2.Principal]] = {
    "principals": lambda namespace, v: rbac_pb2.Principal(
        authenticated=rbac_pb2.Principal.Authenticated(principal_name=_spiffe_match(v))),
    "namespaces": lambda namespace, v: rbac_pb2.Principal(
        authenticated=rbac_pb2.Principal.Authenticated(principal_name=_namespace_match(v))),
    "serviceAccounts": _service_account,
    "ipBlocks": lambda namespace, v: rbac_pb2.Principal(direct_remote_ip=_cidr(v)),
    "remoteIpBlocks": lambda namespace, v: rbac_pb2.Principal(remote_ip=_cidr(v)),
    "requestPrincipals": lambda namespace, v: _request_principal(v),
}


def _path_permission(value: str) -> rbac_pb2.Permission:
    if "{*}" in value or "{**}" in value:
        # Istio's path templates, as Envoy's uri_template: {*} is one segment (`*`), {**}
        # any characters, slashes included (`**`), so `/store/{**}/cart` takes
        # /store/a/b/cart but neither /store/cart nor /store/a/b/other.
        template = value.replace("{**}", "**").replace("{*}", "*")
        config = uri_template_match_pb2.UriTemplateMatchConfig(path_template=template)
        extension = rbac_pb2.Permission(uri_template={
            "name": "uri-template", "typed_config": _pack(config)})
        return extension
    return rbac_pb2.Permission(url_path=path_pb2.PathMatcher(path=istio_string_match(value)))


def _host_permission(value: str) -> rbac_pb2.Permission:
    """The :authority header as sent, exact, `prefix*` or `*suffix`, case-insensitively, as
    Istio matches hosts. No port is implied: `backend` does not match `backend:9090`; a
    policy writes `backend:*` for that (Istio's "Writing Host Match Policies")."""
    return rbac_pb2.Permission(header=_header(":authority", value, ignore_case=True))


_OPERATION_FIELDS: dict[str, Callable[[str], rbac_pb2.Permission]] = {
    "hosts": _host_permission,
    "ports": lambda v: rbac_pb2.Permission(destination_port=int(v)),
    "methods": lambda v: rbac_pb2.Permission(header=_header(":method", v)),
    "paths": _path_permission,
}


def _when_principal(key: str, value: str, namespace: str) -> rbac_pb2.Principal | None:
    if key == "source.ip":
        return rbac_pb2.Principal(direct_remote_ip=_cidr(value))
    if key == "remote.ip":
        return rbac_pb2.Principal(remote_ip=_cidr(value))
    if key == "source.namespace":
        return _SOURCE_FIELDS["namespaces"](namespace, value)
    if key == "source.principal":
        return _SOURCE_FIELDS["principals"](namespace, value)
    if key == "source.serviceAccount":
        return _SOURCE_FIELDS["serviceAccounts"](namespace, value)
    if key.startswith("request.headers["):
        return rbac_pb2.Principal(header=_header(key[len("request.headers["):-1].lower(),
                                                 value))
    if key == "request.auth.principal":
        return _request_principal(value)
    if key == "request.auth.audiences":
        return rbac_pb2.Principal(metadata=_jwt_claim(["aud"], value))
    if key == "request.auth.presenter":
        return rbac_pb2.Principal(metadata=_jwt_claim(["azp"], value))
    if key.startswith("request.auth.claims["):
        return rbac_pb2.Principal(metadata=_jwt_claim(_claim_path(key), value))
    return None


DESTINATION_WHEN_KEYS = {"destination.ip", "destination.port", "connection.sni"}


def _when_permission(key: str, value: str) -> rbac_pb2.Permission | None:
    if key == "destination.ip":
        return rbac_pb2.Permission(destination_ip=_cidr(value))
    if key == "destination.port":
        return rbac_pb2.Permission(destination_port=int(value))
    if key == "connection.sni":
        return rbac_pb2.Permission(requested_server_name=istio_string_match(value))
    return None


def _not_principal(principal: rbac_pb2.Principal) -> rbac_pb2.Principal:
    return rbac_pb2.Principal(not_id=principal)


def _not_permission(permission: rbac_pb2.Permission) -> rbac_pb2.Permission:
    return rbac_pb2.Permission(not_rule=permission)


def _field(values: list[str], negated: list[str], build: Callable[[str], Any],
           any_of: Callable[[list[Any]], Any], negate: Callable[[Any], Any]) -> list[Any]:
    found = []
    if values:
        found.append(any_of([build(v) for v in values]))
    if negated:
        found.append(negate(any_of([build(v) for v in negated])))
    return found


Values = tuple[str, list[str], list[str]]  # a field's name, its values, its `notX` values


def _source_values(source: AuthorizationPolicySpecRuleFromItemSource) -> tuple[Values, ...]:
    """The source fields in the order their principals are AND'ed (that of _SOURCE_FIELDS)."""
    return (
        ("principals", source.principals or [], source.notPrincipals or []),
        ("namespaces", source.namespaces or [], source.notNamespaces or []),
        ("serviceAccounts", [a.root for a in source.serviceAccounts or []],
         [a.root for a in source.notServiceAccounts or []]),
        ("ipBlocks", source.ipBlocks or [], source.notIpBlocks or []),
        ("remoteIpBlocks", source.remoteIpBlocks or [], source.notRemoteIpBlocks or []),
        ("requestPrincipals", source.requestPrincipals or [], source.notRequestPrincipals or []),
    )


def _operation_values(operation: AuthorizationPolicySpecRuleToItemOperation,
                      ) -> tuple[Values, ...]:
    """The operation fields in the order their permissions are AND'ed."""
    return (
        ("hosts", operation.hosts or [], operation.notHosts or []),
        ("ports", operation.ports or [], operation.notPorts or []),
        ("methods", operation.methods or [], operation.notMethods or []),
        ("paths", operation.paths or [], operation.notPaths or []),
    )


def _source(source: AuthorizationPolicySpecRuleFromItemSource | None, tcp: bool, deny: bool,
            namespace: str) -> rbac_pb2.Principal:
    parts: list[rbac_pb2.Principal] = []
    for name, values, negated in _source_values(
            source or AuthorizationPolicySpecRuleFromItemSource()):
        if tcp and (name in HTTP_ONLY_SOURCE) and (values or negated):
            if deny:
                continue
            raise _Unsupported(name)
        parts += _field(values, negated, functools.partial(_SOURCE_FIELDS[name], namespace),
                        _any_of_principals, _not_principal)
    if not parts:
        return rbac_pb2.Principal(any=True)
    return parts[0] if len(parts) == 1 else rbac_pb2.Principal(
        and_ids=rbac_pb2.Principal.Set(ids=parts))


def _operation(operation: AuthorizationPolicySpecRuleToItemOperation | None, tcp: bool,
               deny: bool) -> rbac_pb2.Permission:
    parts: list[rbac_pb2.Permission] = []
    for name, values, negated in _operation_values(
            operation or AuthorizationPolicySpecRuleToItemOperation()):
        if tcp and name in HTTP_ONLY_OPERATION and (values or negated):
            if deny:
                continue
            raise _Unsupported(name)
        parts += _field(values, negated, _OPERATION_FIELDS[name], _any_of_permissions,
                        _not_permission)
    if not parts:
        return rbac_pb2.Permission(any=True)
    return parts[0] if len(parts) == 1 else rbac_pb2.Permission(
        and_rules=rbac_pb2.Permission.Set(rules=parts))


def _rule(rule: AuthorizationPolicySpecRule, tcp: bool, deny: bool, namespace: str,
          ) -> rbac_pb2.Policy:
    """`namespace`: the policy's, where a service account without one is looked for."""
    principals = [_source(item.source, tcp, deny, namespace) for item in rule.from_ or []]
    permissions = [_operation(item.operation, tcp, deny) for item in rule.to or []]
    when_principals: list[rbac_pb2.Principal] = []
    when_permissions: list[rbac_pb2.Permission] = []
    for condition in rule.when or []:
        key = condition.key
        if tcp and key.startswith(HTTP_ONLY_WHEN_PREFIXES):
            if deny:
                continue
            raise _Unsupported(key)
        values, negated = condition.values or [], condition.notValues or []
        if key in DESTINATION_WHEN_KEYS:
            when_permissions += _field(
                values, negated, functools.partial(_when_permission, key), _any_of_permissions,
                _not_permission)
        else:
            when_principals += _field(
                values, negated, functools.partial(_when_principal, key, namespace=namespace),
                _any_of_principals, _not_principal)
    principal_parts = ([_any_of_principals(principals)] if principals else []) + when_principals
    permission_parts = ([_any_of_permissions(permissions)] if permissions else []) \
        + when_permissions
    principal = (rbac_pb2.Principal(any=True) if not principal_parts
                 else principal_parts[0] if len(principal_parts) == 1
                 else rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=principal_parts)))
    permission = (rbac_pb2.Permission(any=True) if not permission_parts
                  else permission_parts[0] if len(permission_parts) == 1
                  else rbac_pb2.Permission(and_rules=rbac_pb2.Permission.Set(
                      rules=permission_parts)))
    return rbac_pb2.Policy(permissions=[permission], principals=[principal])


def policy_name(resource: Resource[Any], index: int) -> str:
    return f"ns[{resource.namespace}]-policy[{resource.name}]-rule[{index}]"


_POLICY_SPECS: dict[str, type[AuthorizationPolicySpec] | type[RequestAuthenticationSpec]] = {
    "AuthorizationPolicy": AuthorizationPolicySpec,
    "RequestAuthentication": RequestAuthenticationSpec,
}


def _attaches(policy: Resource[Any], spec: AuthorizationPolicySpec | RequestAuthenticationSpec,
              proxy: Proxy) -> bool:
    """Whether a policy that selects the workload (or has no selector) applies to it, as
    Istio's WorkloadPolicyMatcher decides. A policy with `targetRefs` (or `targetRef`)
    applies only to the gateway workload deployed for a Gateway API Gateway it names (kind
    Gateway, group gateway.networking.k8s.io, in the policy's own namespace); sidecars and
    Istio-installed gateways ignore it. Policies without targets apply by their selector,
    to Gateway API gateways too (Istio's default ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY)."""
    refs = spec.targetRefs or ([spec.targetRef] if spec.targetRef else [])
    if not refs:
        return True
    gateway = proxy.label_map.get(GATEWAY_NAME_LABEL)
    if gateway is None or policy.namespace != proxy.namespace:
        return False
    return any(ref.group == GATEWAY_API and ref.kind == "Gateway" and ref.name == gateway
               and ref.namespace in (None, "", proxy.namespace) for ref in refs)


def applicable_policies(snapshot: MeshSnapshot, proxy: Proxy,
                        kind: str = "AuthorizationPolicy") -> list[Resource[Any]]:
    """Security policies of `kind` in the root namespace (mesh-wide) and the workload's
    namespace whose selector matches the workload (no selector: all of them), and those
    whose `targetRefs` name the Gateway a gateway workload was deployed for."""
    found = []
    for namespace in dict.fromkeys([ROOT_NAMESPACE, proxy.namespace]):
        for policy in snapshot.selecting("security.istio.io", kind, namespace,
                                         proxy.label_map):
            if _attaches(policy, spec_of(policy, _POLICY_SPECS[kind]), proxy):
                found.append(policy)
    return found


@dataclass
class _Rules:
    enforced: rbac_pb2.RBAC
    shadow: rbac_pb2.RBAC
    present: bool = False
    shadow_present: bool = False


def _rbac_sets(snapshot: MeshSnapshot, proxy: Proxy, tcp: bool) -> dict[str, _Rules]:
    actions = {"DENY": rbac_pb2.RBAC.DENY, "ALLOW": rbac_pb2.RBAC.ALLOW,
               "AUDIT": rbac_pb2.RBAC.LOG}
    sets = {action: _Rules(rbac_pb2.RBAC(action=value), rbac_pb2.RBAC(action=value))
            for action, value in actions.items()}
    for policy in applicable_policies(snapshot, proxy):
        spec = spec_of(policy, AuthorizationPolicySpec)
        action = (spec.action or AuthorizationPolicySpecAction.ALLOW).value
        if action not in sets:
            continue  # CUSTOM needs an ext_authz provider from mesh config
        # As Istio reads it (Go's ParseBool): "1", "t", "True" ... mean dry-run too.
        dry_run = parse_go_bool(policy.metadata.annotations.get(DRY_RUN_ANNOTATION, "")) is True
        target = sets[action]
        rules = target.shadow if dry_run else target.enforced
        if dry_run:
            target.shadow_present = True
        else:
            target.present = True
        for index, rule in enumerate(spec.rules or []):
            try:
                translated = _rule(rule, tcp, deny=action == "DENY",
                                   namespace=policy.namespace)
            except _Unsupported:
                continue  # an ALLOW rule that cannot match on TCP matches nothing
            rules.policies[policy_name(policy, index)].CopyFrom(translated)
    return sets


def _in_use(snapshot: MeshSnapshot, proxy: Proxy, tcp: bool) -> Iterator[tuple[str, _Rules]]:
    for action, rules in _rbac_sets(snapshot, proxy, tcp).items():
        if rules.present or rules.shadow_present:
            yield action.lower(), rules


def _with_rules(config: RbacConfig, rules: _Rules) -> RbacConfig:
    if rules.present:
        config.rules.CopyFrom(rules.enforced)
    if rules.shadow_present:
        config.shadow_rules.CopyFrom(rules.shadow)
    return config


def http_rbac_filters(snapshot: MeshSnapshot, proxy: Proxy) -> list[tuple[str, Message]]:
    """(filter name, config) for the inbound HTTP chain: DENY, then ALLOW, then AUDIT.
    Shadow results land in dynamic metadata under keys with the dry-run prefix, as in Istio."""
    return [(f"envoy.filters.http.rbac.{action}", _with_rules(
                http_rbac_pb2.RBAC(shadow_rules_stat_prefix=f"istio_dry_run_{action}_"), rules))
            for action, rules in _in_use(snapshot, proxy, tcp=False)]


def network_rbac_filters(snapshot: MeshSnapshot, proxy: Proxy, port: int,
                         ) -> list[tuple[str, Message]]:
    """The same policies for a TCP port, enforced on the connection."""
    return [(f"envoy.filters.network.rbac.{action}", _with_rules(
                network_rbac_pb2.RBAC(stat_prefix=f"tcp_{action}_{port}_",
                                      shadow_rules_stat_prefix=f"istio_dry_run_{action}_"),
                rules))
            for action, rules in _in_use(snapshot, proxy, tcp=True)]


EXT_AUTHZ_PREFIX = "istio_ext_authz_"
EXT_AUTHZ_POLICY_PREFIX = "istio-ext-authz-"


def _provider_cluster(service: str, port: int) -> str:
    """Istio names a provider's service as HOST or NAMESPACE/HOST."""
    return f"outbound|{port}||{service.split('/')[-1]}"


def _ext_authz(provider: dict[str, Any]) -> ext_authz_pb2.ExtAuthz | None:
    """Envoy's ext_authz for an Istio extension provider (envoyExtAuthzHttp/Grpc)."""
    config = ext_authz_pb2.ExtAuthz(transport_api_version=config_source_pb2.V3)
    http = provider.get("envoyExtAuthzHttp")
    grpc_ = provider.get("envoyExtAuthzGrpc")
    settings = http or grpc_
    if not settings:
        return None
    cluster = _provider_cluster(str(settings["service"]), int(settings["port"]))
    timeout = duration_pb2.Duration()
    timeout.FromJsonString(str(settings.get("timeout") or istio_defaults.EXT_AUTHZ_TIMEOUT))
    if http:
        host = str(http["service"]).split("/")[-1]
        service = config.http_service
        service.server_uri.CopyFrom(http_uri_pb2.HttpUri(
            uri=f"http://{host}:{http['port']}", cluster=cluster, timeout=timeout))
        service.path_prefix = str(http.get("pathPrefix", ""))
        for header in http.get("includeRequestHeadersInCheck") or []:
            config.allowed_headers.patterns.add(exact=str(header), ignore_case=True)
        for name, value in (http.get("includeAdditionalHeadersInCheck") or {}).items():
            service.authorization_request.headers_to_add.add(key=str(name), value=str(value))
        for header in http.get("headersToUpstreamOnAllow") or []:
            service.authorization_response.allowed_upstream_headers.patterns.add(
                exact=str(header), ignore_case=True)
        for header in http.get("headersToDownstreamOnDeny") or []:
            service.authorization_response.allowed_client_headers.patterns.add(
                exact=str(header), ignore_case=True)
    else:
        config.grpc_service.envoy_grpc.cluster_name = cluster
        config.grpc_service.timeout.CopyFrom(timeout)
    config.failure_mode_allow = bool(settings.get("failOpen", False))
    if settings.get("statusOnError"):
        config.status_on_error.code = int(settings["statusOnError"])
    # Only requests a CUSTOM rule matched (marked by the shadow RBAC filter before) are sent.
    matcher = config.filter_enabled_metadata
    matcher.filter = "envoy.filters.http.rbac"
    matcher.path.add(key=f"{EXT_AUTHZ_PREFIX}shadow_effective_policy_id")
    matcher.value.string_match.prefix = EXT_AUTHZ_POLICY_PREFIX
    return config


def _provider_name(spec: AuthorizationPolicySpec) -> str | None:
    return spec.provider.name if spec.provider else None


def custom_filters(snapshot: MeshSnapshot, proxy: Proxy) -> list[tuple[str, Message]]:
    """CUSTOM policies: a shadow RBAC filter marks requests their rules match, then ext_authz
    asks the provider about exactly those. A provider missing from mesh config fails closed:
    the rules deny, as Istio does."""
    policies = [(p, spec) for p in applicable_policies(snapshot, proxy)
                if (spec := spec_of(p, AuthorizationPolicySpec)).action
                is AuthorizationPolicySpecAction.CUSTOM]
    if not policies:
        return []
    name = _provider_name(policies[0][1]) or ""
    # One provider per workload, as in Istio: policies naming another are not applied.
    chosen = [(p, spec) for p, spec in policies if _provider_name(spec) == name]
    marks = rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW)
    for policy, spec in chosen:
        for index, rule in enumerate(spec.rules or []):
            with contextlib.suppress(_Unsupported):
                marks.policies[EXT_AUTHZ_POLICY_PREFIX + policy_name(policy, index)].CopyFrom(
                    _rule(rule, tcp=False, deny=False, namespace=policy.namespace))
    provider = snapshot.mesh_config.extension_providers.get(name)
    ext_authz = _ext_authz(dict(provider)) if provider else None
    if ext_authz is None:
        deny = rbac_pb2.RBAC(action=rbac_pb2.RBAC.DENY)
        deny.policies.MergeFrom(marks.policies)
        return [("envoy.filters.http.rbac.custom", http_rbac_pb2.RBAC(rules=deny))]
    return [
        ("envoy.filters.http.rbac.custom",
         http_rbac_pb2.RBAC(shadow_rules=marks, shadow_rules_stat_prefix=EXT_AUTHZ_PREFIX)),
        ("envoy.filters.http.ext_authz", ext_authz),
    ]
