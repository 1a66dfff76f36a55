"""Global rules in lease mode -> Envoy's rate-limit quota filter (RLQS): a policy annotated
`heddle.dev/rate-limit-mode: lease` has its global rules enforced by quota the rate-limit
service assigns each proxy, not by a call per request.

Envoy 1.40's filter takes no per-route configuration and puts each request in at most one
bucket (its matchers' first match), so each leased rule is a filter instance of its own on
the connection manager, disabled there and enabled by the routes the rule acts on. Its
matcher is the rule's conditions (a request that does not meet them is not counted), and
its bucket id the rule, the place and each Distinct value (a header, query parameter or
address missing: not counted), as the RLS's descriptors are:
{"heddle.rule": RULE, "heddle.place": PLACE, "c0": VALUE, ...}. A filter instance serves
every route of its rule, so the place comes from a header each such route sets first
(`PLACE_HEADER`, by a header-mutation filter's per-route config, overwriting whatever the
client sent) and removes before forwarding. A shared rule's bucket has no place.

Until its first assignment, and once one expired with the service unreachable, a proxy
limits as if it were alone (a token bucket of the whole limit).
"""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2, base_pb2, extension_pb2, grpc_service_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.http.rate_limit_quota.v3 import rate_limit_quota_pb2 as rlq
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.matching.common_inputs.network.v3 import network_inputs_pb2
from envoy.extensions.matching.input_matchers.ip.v3 import ip_pb2
from envoy.type.matcher.v3 import http_inputs_pb2
from envoy.type.v3 import ratelimit_strategy_pb2, token_bucket_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message
from xds.core.v3 import extension_pb2 as xds_extension_pb2
from xds.type.matcher.v3 import matcher_pb2
from xds.type.matcher.v3 import string_pb2 as xds_string

from heddle.model.gateways import GATEWAY_NAME_LABEL
from heddle.model.rate_limits import (
    GATEWAY_GROUP,
    Attachment,
    Condition,
    LimitPolicy,
    LimitRule,
    MatchKind,
    Mode,
    Source,
)
from heddle.translate.filters.context import Direction, FilterContext, http_filter
from heddle.translate.rate_limits import (
    DOMAIN,
    PLACE_KEY,
    RLS_CLUSTER,
    RULE_KEY,
    inbound_attachment,
    policies,
    rule_id,
)

FILTER = "envoy.filters.http.rate_limit_quota"
FILTER_PREFIX = "heddle.rate_limit_quota/"  # then the rule's id: one instance per rule
PLACE_FILTER = "heddle.rate_limit_quota.place"
PLACE_HEADER = "x-heddle-quota-place"
# Envoy 1.40 reports every 5 s whatever this says (measured); the field is required.
REPORTING_INTERVAL_SECONDS = 5
# Once an assignment expired (the service unreachable), how long the proxy limits alone
# before it starts over as a proxy that never had one (the same bucket: nothing changes).
EXPIRED_FALLBACK_SECONDS = 60


def filter_name(policy: LimitPolicy, rule: LimitRule) -> str:
    return FILTER_PREFIX + rule_id(policy, rule)


def leased(attachment: Attachment) -> list[tuple[LimitPolicy, LimitRule]]:
    return [(p, r) for p, r in attachment.of_mode(Mode.GLOBAL) if p.leased]


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _input(name: str, message: Message) -> xds_extension_pb2.TypedExtensionConfig:
    return xds_extension_pb2.TypedExtensionConfig(name=name, typed_config=_pack(message))


def _value_input(condition: Condition) -> Message:
    """What a condition reads from the request, as a matcher input."""
    found: Message
    if condition.source is Source.SOURCE_CIDR:
        found = network_inputs_pb2.SourceIPInput()
    elif condition.source is Source.QUERY:
        found = http_inputs_pb2.HttpRequestQueryParamMatchInput(query_param=condition.name)
    else:
        found = http_inputs_pb2.HttpRequestHeaderMatchInput(header_name=condition.name)
    return found


def _string_match(condition: Condition) -> xds_string.StringMatcher:
    if condition.kind is MatchKind.REGEX:
        from xds.type.matcher.v3 import regex_pb2

        return xds_string.StringMatcher(safe_regex=regex_pb2.RegexMatcher(
            google_re2=regex_pb2.RegexMatcher.GoogleRE2(), regex=condition.value))
    if condition.kind is MatchKind.PREFIX:
        return xds_string.StringMatcher(prefix=condition.value)
    return xds_string.StringMatcher(exact=condition.value)


def _predicate(condition: Condition) -> matcher_pb2.Matcher.MatcherList.Predicate | None:
    """What a request must have for the rule to count it (None: nothing, for a Distinct
    value, whose absence the bucket id already refuses)."""
    Predicate = matcher_pb2.Matcher.MatcherList.Predicate
    single = Predicate.SinglePredicate(input=_input("input", _value_input(condition)))
    if condition.source is Source.SOURCE_CIDR:
        if condition.kind is MatchKind.DISTINCT and not condition.prefix_length:
            return None
        network = condition.value if "/" in condition.value else (
            f"{condition.value}/{128 if condition.is_ipv6 else 32}")
        address, _, length = network.partition("/")
        single.custom_match.CopyFrom(_input("cidr", ip_pb2.Ip(
            stat_prefix="heddle_rate_limit_quota", cidr_ranges=[address_pb2.CidrRange(
                address_prefix=address, prefix_len=wrappers_pb2.UInt32Value(
                    value=int(length)))])))
    elif condition.kind is MatchKind.DISTINCT:
        return None
    else:
        single.value_match.CopyFrom(_string_match(condition))
    predicate = Predicate(single_predicate=single)
    if condition.invert:
        return Predicate(not_matcher=predicate)
    return predicate


def _whole_limit(rule: LimitRule) -> ratelimit_strategy_pb2.RateLimitStrategy:
    return ratelimit_strategy_pb2.RateLimitStrategy(token_bucket=token_bucket_pb2.TokenBucket(
        max_tokens=rule.requests, tokens_per_fill=wrappers_pb2.UInt32Value(value=rule.requests),
        fill_interval=duration_pb2.Duration(seconds=rule.window_seconds)))


def bucket_settings(policy: LimitPolicy, rule: LimitRule) -> rlq.RateLimitQuotaBucketSettings:
    Settings = rlq.RateLimitQuotaBucketSettings
    builder = Settings.BucketIdBuilder()
    entries = builder.bucket_id_builder
    entries[RULE_KEY].string_value = rule_id(policy, rule)
    if not rule.shared:
        entries[PLACE_KEY].custom_value.CopyFrom(extension_pb2.TypedExtensionConfig(
            name="place", typed_config=_pack(http_inputs_pb2.HttpRequestHeaderMatchInput(
                header_name=PLACE_HEADER))))
    for i, condition in enumerate(rule.conditions):
        if condition.kind is MatchKind.DISTINCT:
            entries[f"c{i}"].custom_value.CopyFrom(extension_pb2.TypedExtensionConfig(
                name=f"c{i}", typed_config=_pack(_value_input(condition))))
    whole = _whole_limit(rule)
    return Settings(
        bucket_id_builder=builder,
        reporting_interval=duration_pb2.Duration(seconds=REPORTING_INTERVAL_SECONDS),
        no_assignment_behavior=Settings.NoAssignmentBehavior(fallback_rate_limit=whole),
        expired_assignment_behavior=Settings.ExpiredAssignmentBehavior(
            fallback_rate_limit=whole, expired_assignment_behavior_timeout=duration_pb2.Duration(
                seconds=EXPIRED_FALLBACK_SECONDS)))


def bucket_matchers(policy: LimitPolicy, rule: LimitRule) -> matcher_pb2.Matcher:
    """The rule's conditions (all of them) -> its bucket; any other request: no bucket."""
    on_match = matcher_pb2.Matcher.OnMatch(action=_input(
        "bucket", bucket_settings(policy, rule)))
    Predicate = matcher_pb2.Matcher.MatcherList.Predicate
    predicates = [p for c in rule.conditions if (p := _predicate(c)) is not None]
    if not predicates:
        return matcher_pb2.Matcher(on_no_match=on_match)
    predicate = predicates[0] if len(predicates) == 1 else Predicate(
        and_matcher=Predicate.PredicateList(predicate=predicates))
    matcher = matcher_pb2.Matcher()
    matcher.matcher_list.matchers.add(predicate=predicate, on_match=on_match)
    return matcher


def filter_config(policy: LimitPolicy, rule: LimitRule) -> rlq.RateLimitQuotaFilterConfig:
    return rlq.RateLimitQuotaFilterConfig(
        domain=DOMAIN, bucket_matchers=bucket_matchers(policy, rule),
        rlqs_server=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=RLS_CLUSTER)))


def _gateway_rules(context: FilterContext) -> list[tuple[LimitPolicy, LimitRule]]:
    """Every leased rule that may act on a route of this gateway: those of policies on its
    Gateway, or on a route (which routes are this gateway's, the routes decide)."""
    gateway = context.proxy.label_map.get(GATEWAY_NAME_LABEL)
    found = []
    for policy in policies(context.snapshot):
        if policy.mode is not Mode.GLOBAL or not policy.leased:
            continue
        if any(t.group == GATEWAY_GROUP and (t.kind != "Gateway" or (
                t.namespace, t.name) == (context.proxy.namespace, gateway))
               for t in policy.targets):
            found += [(policy, rule) for rule in policy.rules]
    return found


def rules_here(context: FilterContext) -> list[tuple[LimitPolicy, LimitRule]]:
    if context.direction is Direction.GATEWAY:
        return _gateway_rules(context)
    if context.direction is Direction.INBOUND:
        return leased(inbound_attachment(context.snapshot, context.proxy, context.port))
    return []


def build(context: FilterContext) -> list[hcm.HttpFilter]:
    """The place header's filter, then a (disabled) quota filter per leased rule."""
    rules = rules_here(context)
    if not rules:
        return []
    found = []
    if any(not rule.shared for _, rule in rules):
        found.append(http_filter(PLACE_FILTER, header_mutation_pb2.HeaderMutation()))
    for policy, rule in rules:
        quota = http_filter(filter_name(policy, rule), filter_config(policy, rule))
        quota.disabled = True
        found.append(quota)
    return found


def attach(route: rc.Route, attachment: Attachment) -> None:
    """Enable the route's leased rules' filters, and name its place for their buckets."""
    rules = leased(attachment)
    if not rules:
        return
    enabled = rc.FilterConfig()
    enabled.config.SetInParent()
    for policy, rule in rules:
        route.typed_per_filter_config[filter_name(policy, rule)].CopyFrom(_pack(enabled))
    if any(not rule.shared for _, rule in rules):
        place = header_mutation_pb2.HeaderMutationPerRoute()
        place.mutations.request_mutations.add().append.CopyFrom(base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=PLACE_HEADER, value=attachment.place),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD))
        route.typed_per_filter_config[PLACE_FILTER].CopyFrom(_pack(place))
        if PLACE_HEADER not in route.request_headers_to_remove:
            route.request_headers_to_remove.append(PLACE_HEADER)


__all__ = ["FILTER", "PLACE_HEADER", "attach", "bucket_matchers", "build", "filter_name"]


