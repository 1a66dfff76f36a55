"""Envoy's RBAC filter evaluated for a described request: which of a sidecar's
AuthorizationPolicy rules (as translated, named `ns[NS]-policy[NAME]-rule[N]`) match it.

Modelled: and/or/not, any, headers (with :method, :path, :authority), url_path, destination
port and port range, destination and source addresses, the peer's principal (mTLS). Not
modelled, so never matching: metadata (JWT claims, request principals), filter state,
requested server name, generic matchers."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network

from envoy.config.core.v3 import address_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2

from heddle.explain.traffic import header_matches, string_matches


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    authority: str
    port: int
    headers: dict[str, str] = field(default_factory=dict)
    principal: str = ""  # the peer's SPIFFE id; "" over plaintext
    source_ip: str = ""
    destination_ip: str = ""

    @property
    def all_headers(self) -> dict[str, str]:
        return {**{k.lower(): v for k, v in self.headers.items()}, ":method": self.method,
                ":path": self.path, ":authority": self.authority}


def _in(cidr: address_pb2.CidrRange, address: str) -> bool:
    if not address:
        return False
    return ip_address(address) in ip_network(
        f"{cidr.address_prefix}/{cidr.prefix_len.value}", strict=False)


def permission_matches(permission: rbac_pb2.Permission, request: Request) -> bool:
    kind = permission.WhichOneof("rule")
    if kind == "any":
        return True
    if kind == "and_rules":
        return all(permission_matches(p, request) for p in permission.and_rules.rules)
    if kind == "or_rules":
        return any(permission_matches(p, request) for p in permission.or_rules.rules)
    if kind == "not_rule":
        return not permission_matches(permission.not_rule, request)
    if kind == "header":
        return header_matches(permission.header, request.all_headers)
    if kind == "url_path":
        return string_matches(permission.url_path.path, request.path.partition("?")[0])
    if kind == "destination_port":
        return bool(permission.destination_port == request.port)
    if kind == "destination_port_range":
        port_range = permission.destination_port_range
        return bool(port_range.start <= request.port < port_range.end)
    if kind == "destination_ip":
        return _in(permission.destination_ip, request.destination_ip)
    return False


def principal_matches(principal: rbac_pb2.Principal, request: Request) -> bool:
    kind = principal.WhichOneof("identifier")
    if kind == "any":
        return True
    if kind == "and_ids":
        return all(principal_matches(p, request) for p in principal.and_ids.ids)
    if kind == "or_ids":
        return any(principal_matches(p, request) for p in principal.or_ids.ids)
    if kind == "not_id":
        return not principal_matches(principal.not_id, request)
    if kind == "authenticated":
        if not request.principal:
            return False
        name = principal.authenticated.principal_name
        return not name.WhichOneof("match_pattern") or string_matches(name, request.principal)
    if kind in ("source_ip", "direct_remote_ip", "remote_ip"):
        return _in(getattr(principal, kind), request.source_ip)
    if kind == "header":
        return header_matches(principal.header, request.all_headers)
    if kind == "url_path":
        return string_matches(principal.url_path.path, request.path.partition("?")[0])
    return False


def matching_policies(rules: rbac_pb2.RBAC, request: Request) -> list[str]:
    """The names of `rules`' policies that match, in name order (Envoy's)."""
    return [name for name, policy in sorted(rules.policies.items())
            if any(permission_matches(p, request) for p in policy.permissions)
            and any(principal_matches(p, request) for p in policy.principals)]


@dataclass(frozen=True)
class Verdict:
    filter: str
    action: str  # DENY, ALLOW, LOG
    matched: tuple[str, ...]
    denied: bool
    dry_run: bool = False


def evaluate(filters: list[tuple[str, http_rbac_pb2.RBAC]], request: Request) -> list[Verdict]:
    """Each RBAC filter's verdict, in chain order, enforced rules then shadow (dry-run)
    rules; evaluation stops at the first enforced denial, as Envoy's does."""
    verdicts = []
    for name, config in filters:
        for rules, dry_run in ((config.rules, False), (config.shadow_rules, True)):
            if not rules.policies and rules.action != rbac_pb2.RBAC.ALLOW:
                continue
            if dry_run and not config.HasField("shadow_rules"):
                continue
            if not dry_run and not config.HasField("rules"):
                continue
            action = rbac_pb2.RBAC.Action.Name(rules.action)
            matched = tuple(matching_policies(rules, request))
            denied = bool(matched) if action == "DENY" else (
                not matched if action == "ALLOW" else False)
            verdicts.append(Verdict(name, action, matched, denied, dry_run))
            if denied and not dry_run:
                return verdicts
    return verdicts
