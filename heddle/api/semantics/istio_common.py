"""Rules several Istio kinds share: label maps, exportTo, gateway names, workload selectors,
host name matching (Istio's host.Name Matches / SubsetOf)."""

from __future__ import annotations

import re
from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import mapping
from heddle.api.semantics.istio_hosts import fqdn_problem, is_dns1123_label

_LABEL = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_QUALIFIED = "(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY = re.compile(rf"^({_LABEL}(?:\.{_LABEL})*/)?({_QUALIFIED})$")
_LABEL_VALUE = re.compile(rf"^({_QUALIFIED})?$")
_LABEL_FIX = ("label keys are [PREFIX/]NAME of letters, digits, '-', '_' and '.', values the "
              "same or empty, each starting and ending with a letter or digit")


def label_problems(path: PathKey, labels: Any) -> list[FieldProblem]:
    problems = []
    for key, value in mapping(labels).items():
        match = _LABEL_KEY.match(str(key))
        if match is None or (match.group(1) and len(match.group(1)) - 1 > 253):
            problems.append(FieldProblem((*path, key), f"invalid label key {key!r}", _LABEL_FIX))
        if not _LABEL_VALUE.match(str(value if value is not None else "")):
            problems.append(FieldProblem((*path, key), f"invalid label value {value!r}",
                                         _LABEL_FIX))
    return problems


def export_to_problems(path: PathKey, namespace: str, export_to: Any,
                       service_entry: bool = False, selector: bool = False,
                       ) -> list[FieldProblem]:
    """Istio's validateExportTo: `.`, `*`, namespaces (and `~` for a ServiceEntry), no
    duplicates, `*` and `~` alone."""
    entries = [str(e) for e in export_to] if isinstance(export_to, list) else []
    problems: list[FieldProblem] = []
    seen: set[str] = set()
    for entry in entries:
        key = namespace if entry == "." else entry
        if key in seen:
            message = (f"duplicate exportTo entries: . and the current namespace {namespace}"
                       if key != entry else f"duplicate exportTo entry {entry!r}")
            problems.append(FieldProblem(path, message, "list each namespace once"))
            continue
        if entry == "~" and not service_entry:
            problems.append(FieldProblem(path, "exportTo ~ (none) is not allowed here",
                                         'use ".", "*" or namespace names'))
            continue
        if key not in (".", "*", "~") and not is_dns1123_label(key):
            problems.append(FieldProblem(path, f"invalid exportTo entry {entry!r}",
                                         'use ".", "*" or a namespace name'))
            continue
        seen.add(key)
    if selector and seen:
        if namespace not in seen:
            problems.append(FieldProblem(path, "a DestinationRule with a workloadSelector "
                                               "cannot be exported beyond its namespace",
                                         'use exportTo: ["."]'))
        elif len(seen) > 1:
            problems.append(FieldProblem(path, "a DestinationRule with a workloadSelector "
                                               "cannot have several exportTo entries",
                                         'use exportTo: ["."]'))
    if "*" in seen and len(entries) > 1:
        problems.append(FieldProblem(path, "exportTo cannot have both * and other entries",
                                     'keep only "*"'))
    if "~" in seen and len(entries) > 1:
        problems.append(FieldProblem(path, "a ServiceEntry cannot be exported to no one (~) "
                                           "and to someone", 'keep only "~"'))
    return problems


def gateway_name_problems(path: PathKey, names: Any, gateway_semantics: bool = False,
                          ) -> list[FieldProblem]:
    """`NAMESPACE/NAME` (the legacy `NAME.NAMESPACE...` draws a warning) or a bare name."""
    problems: list[FieldProblem] = []
    for i, name in enumerate(names if isinstance(names, list) else []):
        if not isinstance(name, str):
            continue
        here = (*path, i)
        namespace, slash, gateway = name.partition("/")
        if not slash:
            if "." in name:
                parts = name.split(".")
                problems.append(FieldProblem(
                    here, f"legacy gateway name format {name!r}",
                    f"prefer NAMESPACE/NAME: {parts[1]}/{parts[0]}", Severity.WARNING))
            problem = fqdn_problem(name)
            if problem:
                problems.append(FieldProblem(here, problem, "name a Gateway as NAMESPACE/NAME"))
            return problems  # as Istio, the rest of the list is not looked at
        if not namespace or not gateway:
            problems.append(FieldProblem(here, "the namespace and name of a gateway cannot be "
                                               "empty", "write NAMESPACE/NAME"))
        if not is_dns1123_label(namespace):
            problems.append(FieldProblem(here, f"invalid gateway namespace {namespace!r}",
                                         "a namespace is one DNS label"))
        if not is_dns1123_label(gateway) and not gateway_semantics:
            problems.append(FieldProblem(here, f"invalid gateway name {gateway!r}",
                                         "a Gateway's name is one DNS label (no dots)"))
    return problems


def empty_selector_warning(path: PathKey, selector: Any, what: str) -> list[FieldProblem]:
    """A selector given without labels selects every workload of the namespace."""
    if selector is not None and not mapping(selector).get("matchLabels") and not mapping(
            selector).get("labels"):
        return [FieldProblem(path, f"{what}: the workload selector has no labels: it applies "
                                   "to every workload in the namespace",
                             "add matchLabels, or remove the selector", Severity.WARNING)]
    return []


def host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: equal, or covered by the other's wildcard either way."""
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild and b_wild:
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    if a_wild:
        return b.endswith(a[1:])
    if b_wild:
        return a.endswith(b[1:])
    return a == b


def host_subset_of(a: str, b: str) -> bool:
    """Istio's host.Name.SubsetOf: `a` is covered by `b`."""
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild:
        return b_wild and len(a) >= len(b) and a[1:].endswith(b[1:])
    if b_wild:
        return a.endswith(b[1:])
    return a == b


def selector_label_problems(path: PathKey, labels: Any) -> list[FieldProblem]:
    """A workload selector's labels: no empty key, no wildcards."""
    problems = []
    for key, value in mapping(labels).items():
        if not key:
            problems.append(FieldProblem(path, "an empty label key is not supported in a "
                                               "selector", "name the label"))
        if "*" in str(key) or "*" in str(value if value is not None else ""):
            problems.append(FieldProblem((*path, key), "wildcards are not supported in a "
                                                       "selector", "match exact labels"))
    return problems
