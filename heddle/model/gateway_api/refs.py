"""What Gateway API resources may refer to: ReferenceGrants across namespaces, namespaces a
listener admits routes from, and where a listener's and a route's hostnames meet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from heddle.api.models import ReferenceGrantSpec
from heddle.api.resource import Resource
from heddle.api.specs import spec_of

NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Grants:
    """The ReferenceGrants in force, by the namespace they are in (the referent's)."""

    by_namespace: Mapping[str, tuple[ReferenceGrantSpec, ...]]
    enforced: bool = True  # False: every reference is allowed (routes of the mesh, as Istio)

    @classmethod
    def of(cls, grants: Iterable[Resource[Any]]) -> Grants:
        found: dict[str, list[ReferenceGrantSpec]] = {}
        for grant in grants:
            found.setdefault(grant.namespace, []).append(spec_of(grant, ReferenceGrantSpec))
        return cls({ns: tuple(specs) for ns, specs in found.items()})

    def allows(self, from_group: str, from_kind: str, from_namespace: str,
               to_group: str, to_kind: str, to_namespace: str, to_name: str) -> bool:
        """Whether a `from_kind` in `from_namespace` may refer to `to_namespace/to_name`;
        always within one namespace."""
        if from_namespace == to_namespace or not self.enforced:
            return True
        for spec in self.by_namespace.get(to_namespace, ()):
            if not any(f.group == from_group and f.kind == from_kind
                       and f.namespace == from_namespace for f in spec.from_):
                continue
            if any(t.group == to_group and t.kind == to_kind and t.name in (None, to_name)
                   for t in spec.to):
                return True
        return False


class LabelSelector(Protocol):
    @property
    def matchLabels(self) -> Mapping[str, str] | None: ...

    @property
    def matchExpressions(self) -> Any: ...


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector: every matchLabels pair and every expression holds."""
    if any(labels.get(k) != v for k, v in (selector.matchLabels or {}).items()):
        return False
    for expression in selector.matchExpressions or []:
        key, operator = expression.key, str(expression.operator)
        values = set(expression.values or [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def namespace_labels(namespaces: Mapping[str, Mapping[str, str]], name: str
                     ) -> dict[str, str]:
    """A namespace's labels, with the name label Kubernetes sets on every namespace."""
    return {**namespaces.get(name, {}), NAME_LABEL: name}


def _wildcard_matches(wildcard: str, host: str) -> bool:
    """`*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`."""
    return host.endswith(wildcard[1:]) and len(host) > len(wildcard) - 1


def intersect(listener: str | None, route: str | None) -> str | None:
    """The hostnames both a listener's `hostname` and one of a route's `hostnames` admit, as
    one hostname (None when they are disjoint; `*` when neither names one)."""
    if listener is None:
        return route or "*"
    if route is None or route == listener:
        return listener
    if listener.startswith("*.") and route.startswith("*."):
        if route.endswith(listener[1:]):
            return route
        if listener.endswith(route[1:]):
            return listener
        return None
    if listener.startswith("*."):
        return route if _wildcard_matches(listener, route) else None
    if route.startswith("*."):
        return listener if _wildcard_matches(route, listener) else None
    return None


def route_hosts(listener: str | None, hostnames: Iterable[str]) -> list[str]:
    """The hosts a route serves on a listener: each of its hostnames narrowed to the
    listener's (all the listener's when it names none); empty when none intersect."""
    names = list(hostnames)
    if not names:
        return [listener or "*"]
    found: list[str] = []
    for name in names:
        meet = intersect(listener, name)
        if meet is not None and meet not in found:
            found.append(meet)
    return found
