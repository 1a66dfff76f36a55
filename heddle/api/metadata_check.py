"""Validation of `metadata` as the Kubernetes API server applies it to every object."""

from __future__ import annotations

import re
from typing import Any

from heddle.api.problems import FieldProblem, did_you_mean

_OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "labels", "annotations", "uid", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "finalizers", "ownerReferences", "managedFields", "selfLink",
}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


def _string_map(meta: dict[str, Any], key: str, labels: bool) -> list[FieldProblem]:
    value = meta.get(key)
    if value is None:
        return []
    if not isinstance(value, dict):
        return [FieldProblem(("metadata", key), f"{key} must be a map of strings",
                             'write it as `key: "value"` pairs')]
    problems: list[FieldProblem] = []
    for name, item in value.items():
        path = ("metadata", key, name)
        if not isinstance(item, str):
            problems.append(FieldProblem(path, f"value must be a string, got {item!r}",
                                         f'quote it: "{item}"'))
        elif labels and (len(item) > 63 or not _LABEL_VALUE.match(item)):
            problems.append(FieldProblem(path, f"invalid label value {item!r}",
                                         "use at most 63 letters, digits, '-', '_' or '.'"))
        if not _QUALIFIED_NAME.match(str(name)):
            problems.append(FieldProblem(path, f"invalid {key[:-1]} key {name!r}",
                                         "use an optional DNS prefix and '/' then a name"))
    return problems


def check_metadata(body: dict[str, Any], namespaced: bool) -> list[FieldProblem]:
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        return [FieldProblem(("metadata",), "missing metadata",
                             "add metadata with at least a name")]
    problems = [
        FieldProblem(("metadata", key), f'unknown field "{key}"',
                     did_you_mean(key, _OBJECT_META_FIELDS) or "remove it")
        for key in meta
        if key not in _OBJECT_META_FIELDS
    ]
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        problems.append(FieldProblem(("metadata",), "missing metadata.name", "add a name"))
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        problems.append(FieldProblem(
            ("metadata", "name"), f"invalid name {name!r}",
            "use lowercase letters, digits, '-' and '.', starting and ending alphanumeric"))
    namespace = meta.get("namespace")
    if namespace is not None and (not isinstance(namespace, str)
                                  or not _DNS_LABEL.match(namespace)):
        problems.append(FieldProblem(("metadata", "namespace"), f"invalid namespace {namespace!r}",
                                     "use a DNS label: lowercase letters, digits and '-'"))
    problems += _string_map(meta, "labels", labels=True)
    problems += _string_map(meta, "annotations", labels=False)
    return problems
