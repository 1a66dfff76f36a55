"""Which DestinationRule applies to a host, for a client in a namespace, as Istio picks it.

Istio looks in the client's namespace first, then in the service's namespace, then in the
root namespace (`istio-system`); in each it takes the rules whose host matches most
specifically (an exact host before the longest matching `*.suffix`) and that are exported to
the client (`exportTo`, default everywhere; a namespace always sees its own rules). Several
rules for one host in one namespace are merged: subsets are appended unless a subset of that
name is already there, and the first rule with a trafficPolicy gives it. Istio orders rules
by creation time; Heddle has none, so name order stands in for it, as elsewhere.

Rules with a `workloadSelector` apply only to the proxies they select; without a proxy (a
translation not made for one client) they are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from heddle.api.models import DestinationRuleSpec
from heddle.api.models.destination_rule_parts import TrafficPolicy
from heddle.api.resource import Resource
from heddle.api.specs import spec_of
from heddle.model.scope import exported_to
from heddle.model.selectors import matches
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import resolve_host

ROOT_NAMESPACE = "istio-system"
_KIND = ("networking.istio.io", "DestinationRule")


@dataclass(frozen=True)
class Subset:
    name: str
    labels: tuple[tuple[str, str], ...]
    traffic_policy: TrafficPolicy | None


@dataclass(frozen=True, repr=False)
class MergedDestinationRule:
    """The rule(s) in force for one host, merged; `names` are `namespace/name`, in order."""

    namespace: str
    host: str
    traffic_policy: TrafficPolicy | None
    subsets: tuple[Subset, ...]
    names: tuple[str, ...]

    def subset(self, name: str) -> Subset | None:
        return next((s for s in self.subsets if s.name == name), None)

    def __repr__(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:
        """Every field, policies as written: the xDS caches key each cluster of the host by
        this text, so it is built once per rule (a snapshot memoizes the rule)."""
        subsets = [(s.name, s.labels, _as_written(s.traffic_policy)) for s in self.subsets]
        return (f"MergedDestinationRule(namespace={self.namespace!r}, host={self.host!r}, "
                f"traffic_policy={_as_written(self.traffic_policy)!r}, subsets={subsets!r}, "
                f"names={self.names!r})")


def _as_written(policy: TrafficPolicy | None) -> dict[str, Any] | None:
    return None if policy is None else policy.model_dump(mode="json", exclude_none=True)


def _host_matches(rule_host: str, hostname: str) -> bool:
    if rule_host == hostname or rule_host == "*":
        return True
    return rule_host.startswith("*.") and hostname.endswith(rule_host[1:])


def _exported_to(rule: Resource[Any], client_namespace: str | None) -> bool:
    """A namespace always sees its own rules; others by the rule's exportTo."""
    if client_namespace is None or client_namespace == rule.namespace:
        return True
    return exported_to(spec_of(rule, DestinationRuleSpec).exportTo or (), rule.namespace,
                       client_namespace)


def _selected(rule: Resource[Any], proxy_labels: Mapping[str, str] | None) -> bool:
    workload_selector = spec_of(rule, DestinationRuleSpec).workloadSelector
    selector = workload_selector.matchLabels if workload_selector is not None else None
    if not selector:
        return True
    return proxy_labels is not None and matches(dict(selector), dict(proxy_labels))


def _specificity(rule_host: str) -> tuple[int, int]:
    """Exact hosts first, then longer wildcards before shorter ones."""
    return (0 if not rule_host.startswith("*") else 1, -len(rule_host))


def _merge(rules: list[Resource[Any]], host: str) -> MergedDestinationRule:
    policy: TrafficPolicy | None = None
    subsets: list[Subset] = []
    for rule in rules:
        spec = spec_of(rule, DestinationRuleSpec)
        if policy is None:  # validation refuses an empty trafficPolicy
            policy = spec.trafficPolicy
        for subset in spec.subsets or []:
            if any(s.name == subset.name for s in subsets):
                continue
            subsets.append(Subset(subset.name, tuple(sorted((subset.labels or {}).items())),
                                  subset.trafficPolicy))
    return MergedDestinationRule(rules[0].namespace, host, policy, tuple(subsets),
                                 tuple(f"{r.namespace}/{r.name}" for r in rules))


def destination_rule(snapshot: MeshSnapshot, hostname: str, service_namespace: str,
                     client_namespace: str | None = None,
                     client_labels: Mapping[str, str] | None = None,
                     ) -> MergedDestinationRule | None:
    """The merged DestinationRule for `hostname` as seen from a client in `client_namespace`
    (None: no particular client, so only the service's and the root namespace count)."""
    labels = tuple(sorted(client_labels.items())) if client_labels is not None else None
    key = ("destination_rule", hostname, service_namespace, client_namespace, labels)
    return snapshot.memo(key, lambda: _find(snapshot, hostname, service_namespace,
                                            client_namespace, client_labels))


def _find(snapshot: MeshSnapshot, hostname: str, service_namespace: str,
          client_namespace: str | None, client_labels: Mapping[str, str] | None,
          ) -> MergedDestinationRule | None:
    namespaces = [client_namespace, service_namespace, ROOT_NAMESPACE]
    for namespace in dict.fromkeys(n for n in namespaces if n is not None):
        found: dict[str, list[Resource[Any]]] = {}
        exact, wildcards = _by_host(snapshot, namespace)
        for rule_host, rule in [*exact.get(hostname, ()), *wildcards]:
            if (_host_matches(rule_host, hostname) and _exported_to(rule, client_namespace)
                    and _selected(rule, client_labels)):
                found.setdefault(rule_host, []).append(rule)
        if found:
            best = min(found, key=_specificity)
            return _merge(found[best], best)
    return None


HostRules = list[tuple[str, Resource[Any]]]


def _by_host(snapshot: MeshSnapshot, namespace: str,
             ) -> tuple[dict[str, HostRules], HostRules]:
    """A namespace's rules with their resolved hosts: exact hosts by host, and wildcards (a
    thousand services times fifty client namespaces must not scan every rule each time)."""
    def compute() -> tuple[dict[str, HostRules], HostRules]:
        exact: dict[str, HostRules] = {}
        wildcards: HostRules = []
        for rule in snapshot.of_kind(*_KIND, namespace):
            rule_host = resolve_host(spec_of(rule, DestinationRuleSpec).host, rule.namespace)
            if rule_host.startswith("*"):
                wildcards.append((rule_host, rule))
            else:
                exact.setdefault(rule_host, []).append((rule_host, rule))
        return exact, wildcards
    return snapshot.memo(("destination_rules_by_host", namespace), compute)
