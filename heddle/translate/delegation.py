"""VirtualService delegation: a root rule hands a set of requests to a delegate VirtualService.

Istio supports one level. Each match of a delegate rule must narrow some match of the root
rule (the "subset" rule: a longer uri prefix, an exact path under the root's prefix, more
headers...); it is merged with every root match it does not conflict with. A delegate rule
with a match that narrows no root match is dropped whole. Regexes never narrow anything.
What the delegate rule leaves unset (timeout, retries, rewrite, headers...) the root's
rule gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from heddle.api.models import VirtualServiceSpec
from heddle.api.models.virtual_service_parts import HTTPMatch, HTTPRoute, StringMatch
from heddle.api.specs import is_empty
from heddle.model.scope import delegates

_MAPS_OF_MATCHES = ("headers", "withoutHeaders", "queryParams")
# Fields of the root rule a delegate rule inherits when it does not set them (Istio).
INHERITED = ("rewrite", "timeout", "retries", "fault", "mirror", "mirrorPercentage",
             "mirrors", "corsPolicy", "headers")


def _string_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """Does `leaf` match anything `root` does not? Unset on either side: no conflict."""
    if root is None or leaf is None or is_empty(root) or is_empty(leaf):
        return False
    if root.regex is not None or leaf.regex is not None:
        return True
    if root.exact is not None:
        return leaf.exact != root.exact
    if root.prefix is not None:
        value = leaf.prefix if leaf.prefix is not None else leaf.exact
        return value is None or not value.startswith(root.prefix)
    return True


def _maps_conflict(root: Mapping[str, StringMatch] | None,
                   leaf: Mapping[str, StringMatch] | None) -> bool:
    root_map = root or {}
    return any(_string_conflict(root_map.get(k), v) for k, v in (leaf or {}).items())


def conflicts(root: HTTPMatch, leaf: HTTPMatch) -> bool:
    if any(_string_conflict(r, le) for r, le in ((root.uri, leaf.uri),
                                                 (root.scheme, leaf.scheme),
                                                 (root.method, leaf.method),
                                                 (root.authority, leaf.authority))):
        return True
    if (_maps_conflict(root.headers, leaf.headers)
            or _maps_conflict(root.withoutHeaders, leaf.withoutHeaders)
            or _maps_conflict(root.queryParams, leaf.queryParams)):
        return True
    if bool(root.ignoreUriCase) != bool(leaf.ignoreUriCase):
        return True
    if root.port and leaf.port and root.port != leaf.port:
        return True
    if root.sourceNamespace and leaf.sourceNamespace != root.sourceNamespace:
        return True
    root_labels = root.sourceLabels or {}
    return any(k in root_labels and root_labels[k] != v
               for k, v in (leaf.sourceLabels or {}).items())


def merge_match(root: HTTPMatch, leaf: HTTPMatch) -> HTTPMatch | None:
    """The root's match narrowed by the delegate's (the delegate's conditions win where both
    set one); None when they conflict."""
    if conflicts(root, leaf):
        return None
    merged: dict[str, Any] = {name: value for name, value in leaf
                              if value is not None and name not in _MAPS_OF_MATCHES}
    for name in (*_MAPS_OF_MATCHES, "sourceLabels"):
        root_map, leaf_map = getattr(root, name), getattr(leaf, name)
        if root_map or leaf_map:
            merged[name] = {**(root_map or {}), **(leaf_map or {})}
    return root.model_copy(update=merged)


def merged_rules(root_rule: HTTPRoute, delegate_spec: VirtualServiceSpec) -> list[HTTPRoute]:
    """The delegate's http rules with matches merged into the root rule's, in order."""
    root_matches = root_rule.match or []
    rules = []
    for rule in delegate_spec.http or []:
        if delegates(rule):  # one level only, as Istio
            continue
        leaves = rule.match or []
        if not root_matches or not leaves:
            matches = leaves or root_matches
        else:
            merged = [[m for r in root_matches if (m := merge_match(r, leaf)) is not None]
                      for leaf in leaves]
            if any(not found for found in merged):
                continue  # a delegate match narrowing no root match: the rule conflicts
            matches = [m for found in merged for m in found]
        update: dict[str, Any] = {
            name: getattr(root_rule, name) for name in INHERITED
            if getattr(root_rule, name) is not None and getattr(rule, name) is None}
        if matches:
            update["match"] = matches
        rules.append(rule.model_copy(update=update) if update else rule)
    return rules
