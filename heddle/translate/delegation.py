"""VirtualService delegation: a root rule hands a set of requests to a delegate VirtualService.

Istio supports one level. Each match of a delegate rule must narrow some match of the root
rule (the "subset" rule: a longer uri prefix, an exact path under the root's prefix, more
headers...); it is merged with every root match it does not conflict with. A delegate rule
with a match that narrows no root match is dropped whole. Regexes never narrow anything.
What the delegate rule leaves unset (timeout, retries, rewrite, headers...) the root's
rule gives.
"""

from __future__ import annotations

from typing import Any

_STRING_MATCHES = ("uri", "scheme", "method", "authority")
_MAPS_OF_MATCHES = ("headers", "withoutHeaders", "queryParams")
# Fields of the root rule a delegate rule inherits when it does not set them (Istio).
_INHERITED = ("rewrite", "timeout", "retries", "fault", "mirror", "mirrorPercentage",
              "mirrors", "corsPolicy", "headers")


def _string_conflict(root: dict[str, Any] | None, leaf: dict[str, Any] | None) -> bool:
    """Does `leaf` match anything `root` does not? Unset on either side: no conflict."""
    if not root or not leaf:
        return False
    if "regex" in root or "regex" in leaf:
        return True
    if "exact" in root:
        return bool(leaf.get("exact") != root["exact"])
    if "prefix" in root:
        value = leaf.get("prefix", leaf.get("exact"))
        return value is None or not str(value).startswith(str(root["prefix"]))
    return True


def conflicts(root: dict[str, Any], leaf: dict[str, Any]) -> bool:
    if any(_string_conflict(root.get(f), leaf.get(f)) for f in _STRING_MATCHES):
        return True
    for field in _MAPS_OF_MATCHES:
        root_map = root.get(field) or {}
        if any(_string_conflict(root_map.get(k), v) for k, v in (leaf.get(field) or {}).items()):
            return True
    if bool(root.get("ignoreUriCase")) != bool(leaf.get("ignoreUriCase")):
        return True
    if root.get("port") and leaf.get("port") and root["port"] != leaf["port"]:
        return True
    if root.get("sourceNamespace") and leaf.get("sourceNamespace") != root["sourceNamespace"]:
        return True
    root_labels = root.get("sourceLabels") or {}
    return any(k in root_labels and root_labels[k] != v
               for k, v in (leaf.get("sourceLabels") or {}).items())


def merge_match(root: dict[str, Any], leaf: dict[str, Any]) -> dict[str, Any] | None:
    """The root's match narrowed by the delegate's (the delegate's conditions win where both
    set one); None when they conflict."""
    if conflicts(root, leaf):
        return None
    merged = {**root, **{k: v for k, v in leaf.items() if k not in _MAPS_OF_MATCHES}}
    for field in (*_MAPS_OF_MATCHES, "sourceLabels"):
        if root.get(field) or leaf.get(field):
            merged[field] = {**(root.get(field) or {}), **(leaf.get(field) or {})}
    return merged


def merged_rules(root_rule: dict[str, Any], delegate_spec: dict[str, Any],
                 ) -> list[dict[str, Any]]:
    """The delegate's http rules with matches merged into the root rule's, in order."""
    root_matches = root_rule.get("match") or []
    rules = []
    for rule in delegate_spec.get("http") or []:
        if rule.get("delegate"):  # one level only, as Istio
            continue
        leaves = rule.get("match") or []
        if not root_matches or not leaves:
            matches = leaves or root_matches
        else:
            merged = [[m for r in root_matches if (m := merge_match(r, leaf)) is not None]
                      for leaf in leaves]
            if any(not found for found in merged):
                continue  # a delegate match narrowing no root match: the rule conflicts
            matches = [m for found in merged for m in found]
        inherited = {k: root_rule[k] for k in _INHERITED if k in root_rule and k not in rule}
        rules.append({**rule, **inherited, "match": matches} if matches
                     else {**rule, **inherited})
    return rules
