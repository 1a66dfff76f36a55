"""VirtualService delegation: a root rule hands a set of requests to a delegate VirtualService.

Istio supports one level. Each delegate rule's matches are merged into the root rule's; a
delegate match must narrow the root's (the "subset" rule: a longer uri prefix, the same
method, more headers...). A delegate match that conflicts with the root's never applies.
"""

from __future__ import annotations

from typing import Any

# Fields compared whole: the delegate may set them only where the root leaves them unset
# or sets the same value.
_SCALARS = ("method", "scheme", "authority", "port", "ignoreUriCase", "sourceNamespace")
_MAPS = ("headers", "withoutHeaders", "queryParams", "sourceLabels")


def _uri_narrows(root: dict[str, Any], delegate: dict[str, Any]) -> bool:
    """Is every uri the delegate matches also one the root matches?"""
    if "prefix" in root:
        value = delegate.get("prefix", delegate.get("exact"))
        return value is not None and str(value).startswith(str(root["prefix"]))
    return delegate == root  # exact and regex roots: only the same condition narrows them


def merge_match(root: dict[str, Any], delegate: dict[str, Any]) -> dict[str, Any] | None:
    """The root's match narrowed by the delegate's; None when they conflict."""
    merged = dict(root)
    if "uri" in delegate:
        if "uri" in root and not _uri_narrows(root["uri"], delegate["uri"]):
            return None
        merged["uri"] = delegate["uri"]
    for name in _SCALARS:
        if name in delegate:
            if name in root and root[name] != delegate[name]:
                return None
            merged[name] = delegate[name]
    for name in _MAPS:
        if name not in delegate:
            continue
        combined = dict(root.get(name) or {})
        for key, value in delegate[name].items():
            if key in combined and combined[key] != value:
                return None
            combined[key] = value
        merged[name] = combined
    return merged


def merged_rules(root_rule: dict[str, Any], delegate_spec: dict[str, Any],
                 ) -> list[dict[str, Any]]:
    """The delegate's http rules with matches merged into the root rule's, in order."""
    root_matches = root_rule.get("match") or [{}]
    rules = []
    for rule in delegate_spec.get("http") or []:
        if rule.get("delegate"):  # one level only, as Istio
            continue
        matches = [m for r in root_matches for d in rule.get("match") or [{}]
                   if (m := merge_match(r, d)) is not None]
        if matches:
            rules.append({**rule, "match": matches})
    return rules
