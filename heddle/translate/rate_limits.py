"""Rate-limit policies -> Envoy: per route, the actions that make a rule's descriptor (one
entry per condition, after an entry naming the rule's bucket), then a local token bucket per
rule (`local_ratelimit`) or the global rate-limit service's verdict (`ratelimit`, domain
`heddle`); and the rate-limit service's own configuration (envoyproxy/ratelimit's YAML form),
which the control plane writes for `heddle ratelimit`.

Envoy leaves a descriptor out when any action cannot produce its entry (a header absent, a
match that fails), so a rule counts only requests that meet all its conditions, as Envoy
Gateway's clientSelectors mean.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, extension_pb2, protocol_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2 as common_rl
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as local_rl
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2 as global_rl
from envoy.extensions.rate_limit_descriptors.expr.v3 import expr_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2, token_bucket_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from heddle.model.gateway_api.gateways import PARENTS_ANNOTATION
from heddle.model.kuadrant_limits import KIND as KUADRANT_KIND
from heddle.model.kuadrant_limits import KUADRANT_GROUP, RoutePlace, acting_on, kuadrant_policies
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.rate_limits import (
    Attachment,
    Condition,
    LimitPolicy,
    LimitRule,
    MatchKind,
    Mode,
    Source,
    for_route,
    for_service,
    limit_policies,
)
from heddle.model.serving import served
from heddle.model.snapshot import MeshSnapshot

LOCAL_FILTER = "envoy.filters.http.local_ratelimit"
SHADOW_LOCAL_FILTER = "heddle.local_ratelimit.shadow"  # a second local_ratelimit, never enforced
GLOBAL_FILTER = "envoy.filters.http.ratelimit"
DOMAIN = "heddle"
RULE_KEY = "heddle.rule"  # the first entry of every descriptor: which policy's rule
PLACE_KEY = "heddle.place"  # then, unless the rule is shared, where: each place its own bucket
MATCHED = "match"  # the value of an entry that says a condition held
RLS_CLUSTER = "heddle-ratelimit"
EXPR_DESCRIPTOR = "envoy.rate_limit_descriptors.expr"
STAT_PREFIX = "http_local_rate_limiter"
# Requests no rule counts pass: a route's default bucket is (practically) unlimited.
UNLIMITED = 4_294_967_295
MAX_DISTINCT_VALUES = 10_000  # per route: buckets made for Distinct values, as LRU
LIMITED_HEADER = "x-heddle-ratelimit"  # on a local 429: the route's local rules
SHADOW_HEADER = "x-heddle-ratelimit-shadow"  # to the backend: what shadow rules would refuse


def policies(snapshot: MeshSnapshot) -> tuple[LimitPolicy, ...]:
    return snapshot.memo(("rate-limit-policies",), lambda: limit_policies(
        snapshot.of_kind("gateway.envoyproxy.io", "BackendTrafficPolicy"))
        + kuadrant_policies(snapshot.of_kind(KUADRANT_GROUP, KUADRANT_KIND)))


def rule_id(policy: LimitPolicy, rule: LimitRule) -> str:
    """How descriptors, logs and the rate-limit service name a rule."""
    return f"{policy.ref}/{policy.mode.value.lower()}/{rule.index}"


def _key(index: int) -> str:
    return f"c{index}"


def _string_match(condition: Condition) -> string_pb2.StringMatcher:
    if condition.source is Source.PATH and condition.kind is MatchKind.EXACT:
        # `:path` carries the query: an exact path is that path, with any query after it.
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(
            regex=re.escape(condition.value) + r"(\?.*)?"))
    if condition.kind is MatchKind.REGEX:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=condition.value))
    if condition.kind is MatchKind.PREFIX:
        return string_pb2.StringMatcher(prefix=condition.value)
    return string_pb2.StringMatcher(exact=condition.value)


def _matched(condition: Condition) -> str:
    """The value of the entry a condition makes when it holds ("" for each value its own)."""
    if condition.kind is MatchKind.DISTINCT:
        return ""
    return condition.value if condition.source is Source.EXPR else MATCHED


def _expression(key: str, condition: Condition) -> rc.RateLimit.Action:
    """Envoy evaluates the CEL and makes the entry of its value; an expression that fails
    (a header absent) leaves the whole descriptor out, so the rule does not count it."""
    return rc.RateLimit.Action(extension=extension_pb2.TypedExtensionConfig(
        name=EXPR_DESCRIPTOR, typed_config=_pack(expr_pb2.Descriptor(
            descriptor_key=key, text=condition.name))))


def _action(index: int, condition: Condition) -> list[rc.RateLimit.Action]:
    key = _key(index)
    Action = rc.RateLimit.Action
    if condition.source is Source.EXPR:
        return [_expression(key, condition)]
    if condition.source is Source.SOURCE_CIDR:
        if condition.kind is MatchKind.DISTINCT:
            actions = []
            if condition.prefix_length:  # within the range first, then each address
                actions.append(_masked(condition.prefix_length, condition.is_ipv6))
            actions.append(_masked(128 if condition.is_ipv6 else 32, condition.is_ipv6))
            return actions
        return [_masked(condition.prefix_length, condition.is_ipv6)]
    if condition.kind is MatchKind.DISTINCT:
        if condition.source is Source.QUERY:
            return [Action(query_parameters=Action.QueryParameters(
                query_parameter_name=condition.name, descriptor_key=key))]
        return [Action(request_headers=Action.RequestHeaders(
            header_name=condition.name, descriptor_key=key))]
    expect = wrappers_pb2.BoolValue(value=not condition.invert)
    if condition.source is Source.QUERY:
        return [Action(query_parameter_value_match=Action.QueryParameterValueMatch(
            descriptor_key=key, descriptor_value=MATCHED, expect_match=expect,
            query_parameters=[rc.QueryParameterMatcher(
                name=condition.name, string_match=_string_match(condition))]))]
    return [Action(header_value_match=Action.HeaderValueMatch(
        descriptor_key=key, descriptor_value=MATCHED, expect_match=expect,
        headers=[rc.HeaderMatcher(name=condition.name,
                                  string_match=_string_match(condition))]))]


def _masked(length: int, ipv6: bool) -> rc.RateLimit.Action:
    masked = rc.RateLimit.Action.MaskedRemoteAddress()
    if ipv6:
        masked.v6_prefix_mask_len.value = length
    else:
        masked.v4_prefix_mask_len.value = length
    return rc.RateLimit.Action(masked_remote_address=masked)


def _rate_limit(policy: LimitPolicy, rule: LimitRule, place: str) -> rc.RateLimit:
    GenericKey = rc.RateLimit.Action.GenericKey
    limit = rc.RateLimit(actions=[rc.RateLimit.Action(generic_key=GenericKey(
        descriptor_key=RULE_KEY, descriptor_value=rule_id(policy, rule)))])
    if not rule.shared:
        limit.actions.add(generic_key=GenericKey(descriptor_key=PLACE_KEY,
                                                 descriptor_value=place))
    for i, condition in enumerate(rule.conditions):
        limit.actions.extend(_action(i, condition))
    if rule.cost != 1:
        limit.hits_addend.number.value = rule.cost
    return limit


def _entries(policy: LimitPolicy, rule: LimitRule, place: str,
             ) -> list[common_rl.RateLimitDescriptor.Entry]:
    """The descriptor a rule's actions make, as a local bucket names it: a Distinct value
    is left empty (each value its own bucket)."""
    Entry = common_rl.RateLimitDescriptor.Entry
    entries = [Entry(key=RULE_KEY, value=rule_id(policy, rule))]
    if not rule.shared:
        entries.append(Entry(key=PLACE_KEY, value=place))
    for i, condition in enumerate(rule.conditions):
        if condition.source is Source.SOURCE_CIDR:
            network = condition.value if "/" in condition.value else (
                f"{condition.value}/{128 if condition.is_ipv6 else 32}")
            if condition.kind is not MatchKind.DISTINCT or condition.prefix_length:
                entries.append(Entry(key="masked_remote_address", value=network))
            if condition.kind is MatchKind.DISTINCT:
                entries.append(Entry(key="masked_remote_address", value=""))
        else:
            entries.append(Entry(key=_key(i), value=_matched(condition)))
    return entries


def _bucket(rule: LimitRule) -> token_bucket_pb2.TokenBucket:
    return token_bucket_pb2.TokenBucket(
        max_tokens=rule.requests, tokens_per_fill=wrappers_pb2.UInt32Value(value=rule.requests),
        fill_interval=duration_pb2.Duration(seconds=rule.fill_interval_ms // 1000,
                                            nanos=rule.fill_interval_ms % 1000 * 1_000_000))


def _percent(value: int) -> base_pb2.RuntimeFractionalPercent:
    return base_pb2.RuntimeFractionalPercent(default_value=percent_pb2.FractionalPercent(
        numerator=value, denominator=percent_pb2.FractionalPercent.HUNDRED))


def local_route_config(attachment: Attachment, shadow: bool = False,
                       ) -> local_rl.LocalRateLimit | None:
    """The route's enforced local rules, or (`shadow`) its shadow-mode ones: Envoy enforces
    one filter's buckets together, so shadow rules have a filter of their own
    (SHADOW_LOCAL_FILTER), never enforced, counting and logging what it would refuse."""
    rules = [(p, r) for p, r in attachment.of_mode(Mode.LOCAL) if r.shadow is shadow]
    if not rules:
        return None
    enforced = 0 if shadow else 100
    config = local_rl.LocalRateLimit(
        stat_prefix=STAT_PREFIX,
        token_bucket=token_bucket_pb2.TokenBucket(
            max_tokens=UNLIMITED, tokens_per_fill=wrappers_pb2.UInt32Value(value=UNLIMITED),
            fill_interval=duration_pb2.Duration(seconds=1)),
        filter_enabled=_percent(100), filter_enforced=_percent(enforced),
        rate_limits=[_rate_limit(p, r, attachment.place) for p, r in rules],
        descriptors=[common_rl.LocalRateLimitDescriptor(
            entries=_entries(p, r, attachment.place), token_bucket=_bucket(r))
            for p, r in rules])
    if any(rule.headers for _, rule in rules):
        config.enable_x_ratelimit_headers = common_rl.DRAFT_VERSION_03
    # Envoy does not say which bucket refused: the route's rules are named instead (the
    # access log reads these headers).
    named = ",".join(rule_id(p, r) for p, r in rules)
    config.response_headers_to_add.add(header=base_pb2.HeaderValue(
        key=LIMITED_HEADER, value=named))
    if not enforced:
        config.request_headers_to_add_when_not_enforced.add(header=base_pb2.HeaderValue(
            key=SHADOW_HEADER, value=named))
    if any(c.kind is MatchKind.DISTINCT for _, r in rules for c in r.conditions):
        config.max_dynamic_descriptors.value = MAX_DISTINCT_VALUES
    return config


def global_route_config(attachment: Attachment) -> global_rl.RateLimitPerRoute | None:
    # Leased rules are the quota filter's (heddle.translate.rate_limit_quota), not the RLS's.
    rules = [(p, r) for p, r in attachment.of_mode(Mode.GLOBAL) if not p.leased]
    if not rules:
        return None
    return global_rl.RateLimitPerRoute(
        rate_limits=[_rate_limit(p, r, attachment.place) for p, r in rules])


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def attach(route: rc.Route, attachment: Attachment) -> None:
    """Put the attachment's local buckets and global actions on `route`."""
    for name, shadow in ((LOCAL_FILTER, False), (SHADOW_LOCAL_FILTER, True)):
        local = local_route_config(attachment, shadow)
        if local is not None:
            route.typed_per_filter_config[name].CopyFrom(_pack(local))
    per_route = global_route_config(attachment)
    if per_route is not None:
        route.typed_per_filter_config[GLOBAL_FILTER].CopyFrom(_pack(per_route))
    from heddle.translate import rate_limit_quota  # it builds on this module

    rate_limit_quota.attach(route, attachment)


def gateway_attachment(snapshot: MeshSnapshot, proxy: Proxy, route: rc.Route,
                       origin: tuple[str, str, str] | None, server: str = "",
                       rule: str = "") -> Attachment:
    """`server`: the (Istio) Gateway `namespace/name` whose server the route is for;
    `rule`: the name of the http rule it was made from (a Gateway API rule's name)."""
    gateway_name = proxy.label_map.get("gateway.networking.k8s.io/gateway-name")
    gateway = (proxy.namespace, gateway_name) if gateway_name else None
    place = f"{origin[1]}/{origin[2]}/{route.name}" if origin else route.name
    everything = policies(snapshot)
    attachment = for_route([p for p in everything if p.key.group != KUADRANT_GROUP],
                           origin, gateway, place)
    kuadrant = [p for p in everything if p.key.group == KUADRANT_GROUP]
    if not kuadrant:
        return attachment
    where = RoutePlace(gateway, _listener(snapshot, server), origin, rule)
    return Attachment(attachment.policies + acting_on(kuadrant, where), place)


def _listener(snapshot: MeshSnapshot, server: str) -> str:
    """The Gateway API listener an Istio Gateway was made for (its parents annotation
    reads `Gateway/NAME/LISTENER.NAMESPACE`), or ""."""
    namespace, _, name = server.partition("/")
    for gateway in snapshot.of_kind("networking.istio.io", "Gateway", namespace):
        if gateway.name == name:
            parent = gateway.metadata.annotations.get(PARENTS_ANNOTATION, "")
            return parent.split("/", 2)[-1].removesuffix(f".{namespace}") if parent else ""
    return ""


def services_at(snapshot: MeshSnapshot, proxy: Proxy, number: int) -> list[tuple[str, str]]:
    """(namespace, name) of each Service whose port reaches this workload at `number`."""
    return list(dict.fromkeys((p.service.namespace, p.service.name)
                              for p in served(snapshot, proxy).get(number, ())))


def inbound_attachment(snapshot: MeshSnapshot, proxy: Proxy, number: int) -> Attachment:
    """Policies on the Services this inbound port serves; their buckets are the Service's,
    so every replica counts a global rule in one bucket."""
    chosen: list[LimitPolicy] = []
    places = []
    for namespace, name in services_at(snapshot, proxy, number):
        attachment = for_service(policies(snapshot), namespace, name, f"{namespace}/{name}")
        chosen += [p for p in attachment.policies if p not in chosen]
        places.append(attachment.place)
    return Attachment(tuple(chosen), ",".join(places) or f"{proxy.namespace}/{proxy.name}")


def has_shadow_local_rules(snapshot: MeshSnapshot) -> bool:
    return any(p.mode is Mode.LOCAL and any(r.shadow for r in p.rules)
               for p in policies(snapshot))


def needs_remote_address(attachment: Attachment) -> bool:
    """Whether a rule reads the client's address: then the connection's peer, never an
    X-Forwarded-For the client wrote."""
    return any(c.source is Source.SOURCE_CIDR for p in attachment.policies for r in p.rules
               for c in r.conditions)


def has_policies(snapshot: MeshSnapshot, mode: Mode | None = None) -> bool:
    return any(mode is None or p.mode is mode for p in policies(snapshot))


def rate_limit_clusters(snapshot: MeshSnapshot, proxy: Proxy) -> list[cluster_pb2.Cluster]:
    """The rate-limit service's cluster, for a proxy some global rule acts on."""
    if not has_policies(snapshot, Mode.GLOBAL):
        return []
    if proxy.type is ProxyType.SIDECAR and not any(
            inbound_attachment(snapshot, proxy, number).of_mode(Mode.GLOBAL)
            for number in served(snapshot, proxy)):
        return []
    return [rate_limit_cluster(snapshot.mesh_config.rate_limit_service)]


def rate_limit_cluster(addresses: str) -> cluster_pb2.Cluster:
    """The rate-limit service, over HTTP/2 (gRPC) at `addresses` (host:port, comma-separated:
    its replicas, asked in turn)."""
    cluster = cluster_pb2.Cluster(name=RLS_CLUSTER, type=cluster_pb2.Cluster.STATIC,
                                  connect_timeout=duration_pb2.Duration(seconds=1))
    cluster.load_assignment.cluster_name = RLS_CLUSTER
    endpoints = cluster.load_assignment.endpoints.add()
    for address in filter(None, (a.strip() for a in addresses.split(","))):
        host, _, port = address.rpartition(":")
        endpoint = endpoints.lb_endpoints.add().endpoint
        endpoint.address.CopyFrom(address_pb2.Address(socket_address=address_pb2.SocketAddress(
            address=host.strip("[]"), port_value=int(port))))
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.CopyFrom(
        protocol_pb2.Http2ProtocolOptions())
    cluster.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].CopyFrom(_pack(options))
    return cluster


# The rate-limit service's configuration --------------------------------------------------

def _descriptor(policy: LimitPolicy, rule: LimitRule) -> dict[str, Any]:
    """The rule's branch of the descriptor tree: the rule, its place (any value: each its
    own bucket) unless shared, one level per entry its conditions make; the limit on the
    last level."""
    levels: list[tuple[str, str]] = [(RULE_KEY, rule_id(policy, rule))]
    if not rule.shared:
        levels.append((PLACE_KEY, ""))
    for i, condition in enumerate(rule.conditions):
        if condition.source is Source.SOURCE_CIDR:
            if condition.kind is not MatchKind.DISTINCT or condition.prefix_length:
                levels.append(("masked_remote_address", condition.value))
            if condition.kind is MatchKind.DISTINCT:
                levels.append(("masked_remote_address", ""))
        else:
            levels.append((_key(i), _matched(condition)))
    node: dict[str, Any] = {"rate_limit": {"unit": rule.unit,
                                           "requests_per_unit": rule.requests}}
    if rule.shadow:
        node["shadow_mode"] = True
    for key, value in reversed(levels):
        level: dict[str, Any] = {"key": key, **({"value": value} if value else {})}
        if "key" in node:
            level["descriptors"] = [node]
        else:
            level.update(node)
        node = level
    return node


def service_config(policies: Iterable[LimitPolicy]) -> dict[str, Any]:
    """envoyproxy/ratelimit's configuration of the domain: a branch per global rule."""
    return {"domain": DOMAIN, "descriptors": [
        _descriptor(policy, rule) for policy in policies if policy.mode is Mode.GLOBAL
        for rule in policy.rules]}


__all__ = ["DOMAIN", "GLOBAL_FILTER", "LOCAL_FILTER", "RLS_CLUSTER", "attach",
           "gateway_attachment", "global_route_config", "inbound_attachment",
           "local_route_config", "rate_limit_cluster", "rate_limit_clusters", "service_config"]
