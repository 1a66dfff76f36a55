"""Istio's warnings on a VirtualService's rules that can never match: a rule after one without
matches, a rule whose every match an earlier rule has, and (HTTP) a match an earlier prefix
match covers (VirtualServiceUnreachableRule / VirtualServiceIneffectiveMatch)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import items, mapping


def _unreachable(path: PathKey, rule: str, reason: str) -> FieldProblem:
    return FieldProblem(path, f"rule {rule} is never used ({reason})",
                        "remove the rule, or move it before the rule that takes its traffic",
                        Severity.WARNING, code="IST0130")


def _ineffective(path: PathKey, rule: str, match: str, earlier: str) -> FieldProblem:
    return FieldProblem(path, f"rule {rule} match {match} is never used (a duplicate of, or "
                              f"covered by, a match in rule {earlier})",
                        "remove the match, or order the rules most specific first",
                        Severity.WARNING, code="IST0131")


def _rule_name(rule: dict[str, Any], index: int) -> str:
    return json.dumps(rule["name"]) if rule.get("name") else f"#{index}"


def _match_name(match: dict[str, Any], index: int) -> str:
    return json.dumps(match["name"]) if match.get("name") else f"#{index}"


def _key(match: Any) -> str:
    body = {k: v for k, v in mapping(match).items() if k != "name"}
    return json.dumps(body, sort_keys=True)


def _exact_or_prefix(match: Any) -> str:
    match = mapping(match)
    if match.get("exact"):
        return "exact:" + str(match["exact"])
    if match.get("prefix"):
        return "prefix:" + str(match["prefix"])
    return ""


@dataclass(frozen=True)
class _PrefixMatch:
    """A match on a URI prefix and what else it requires, to compare with later ones."""

    rule: str
    match: str
    path: PathKey
    prefix: str
    port: Any
    method: str
    authority: str
    headers: dict[str, str]
    query: dict[str, str]
    without: dict[str, str]

    def covers(self, later: _PrefixMatch) -> bool:
        """Istio's coveredValidation: this earlier match takes everything `later` would."""
        if not later.prefix.startswith(self.prefix) or later.port != self.port:
            return False
        for mine, theirs in ((self.method, later.method), (self.authority, later.authority)):
            if mine != theirs and not mine.startswith(theirs):
                return False
        for mine_map, theirs_map in ((self.headers, later.headers), (self.query, later.query),
                                     (self.without, later.without)):
            if len(mine_map) != len(theirs_map):
                return False
            for key, value in mine_map.items():
                if key not in theirs_map:
                    return False
                if value != theirs_map[key] and not value.startswith(theirs_map[key]):
                    return False
        return True


def _prefix_match(path: PathKey, rule: str, name: str, match: dict[str, Any],
                  ) -> _PrefixMatch | None:
    prefix = mapping(match.get("uri")).get("prefix")
    if match.get("uri") is None or not prefix:
        return None
    return _PrefixMatch(
        rule, name, path, str(prefix), match.get("port", 0),
        _exact_or_prefix(match.get("method")) or "exact:GET",  # no method: GET, as Istio
        _exact_or_prefix(match.get("authority")),
        {k: _exact_or_prefix(v) for k, v in mapping(match.get("headers")).items()},
        {k: _exact_or_prefix(v) for k, v in mapping(match.get("queryParams")).items()},
        {k: _exact_or_prefix(v) for k, v in mapping(match.get("withoutHeaders")).items()})


def _rules(path: PathKey, rules: list[tuple[int, Any]], http: bool) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    seen: dict[str, int] = {}
    catch_all = -1
    prefixes: list[_PrefixMatch] = []
    for index, raw in rules:
        if raw is None:
            continue
        rule = mapping(raw)
        here = (*path, index)
        name = _rule_name(rule, index) if http else f"#{index}"
        matches = items(rule.get("match"))
        if not matches:
            if catch_all >= 0:
                problems.append(_unreachable(here, name, "only the last rule can have no "
                                                         "matches"))
            catch_all = index
            continue
        duplicates = 0
        for m, match in matches:
            if catch_all >= 0:
                problems.append(_unreachable(here, name, "a rule without matches comes "
                                                         "before it"))
                continue
            key = _key(match)
            if key in seen:
                first = seen[key]
                earlier_name = (_rule_name(mapping(dict(rules)[first]), first) if http
                                else f"#{first}")
                match_name = _match_name(mapping(match), m) if http else f"#{m}"
                problems.append(_ineffective((*here, "match", m), name, match_name,
                                             earlier_name))
                duplicates += 1
                continue
            seen[key] = index
            if http:
                found = _prefix_match((*here, "match", m), name, _match_name(mapping(match), m),
                                      mapping(match))
                if found is not None:
                    prefixes.append(found)
        if duplicates == len(matches):
            problems.append(_unreachable(here, name, "every match is used by earlier rules"))
    for i, earlier in enumerate(prefixes):
        for later in prefixes[i + 1:]:
            if later.prefix != earlier.prefix and earlier.covers(later):
                problems.append(_ineffective(
                    later.path, later.rule, f"{later.match} of prefix {later.prefix}",
                    f"{earlier.rule} (its match {earlier.match} of prefix {earlier.prefix})"))
    return problems


def unreachable_rule_warnings(spec: dict[str, Any]) -> list[FieldProblem]:
    return [*_rules(("spec", "http"), items(spec.get("http")), http=True),
            *_rules(("spec", "tcp"), items(spec.get("tcp")), http=False),
            *_rules(("spec", "tls"), items(spec.get("tls")), http=False)]
