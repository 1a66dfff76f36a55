"""Rules of a VirtualService that can never match (IST0130) and matches earlier ones already
take (IST0131): duplicate matches, rules after a catch-all, and HTTP prefix matches that an
earlier, shorter prefix with the same conditions covers. Istio reports these as warnings of
its validation; Heddle's analyzer reports them with the same codes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import ISTIO, AnalysisInput, spec
from heddle.analyze.messages import VS_INEFFECTIVE_MATCH, VS_UNREACHABLE_RULE, Message
from heddle.api.resource import Resource
from heddle.api.yaml_documents import PathKey

VS = (ISTIO, "VirtualService")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _meaningful(value: Any) -> Any:
    """The value without its empty and default fields, which do not change what matches."""
    if isinstance(value, dict):
        kept = {k: _meaningful(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", 0, False, {}, [])}
    if isinstance(value, list):
        return [_meaningful(v) for v in value]
    return value


def _key(match: Mapping[str, Any]) -> str:
    return json.dumps(_meaningful({k: v for k, v in match.items() if k != "name"}),
                      sort_keys=True)


def _rule_name(rule: Mapping[str, Any], index: int, section: str) -> str:
    return f"\"{rule['name']}\"" if section == "http" and rule.get("name") else f"#{index}"


def _match_name(match: Mapping[str, Any], index: int, section: str) -> str:
    return f"\"{match['name']}\"" if section == "http" and match.get("name") else f"#{index}"


def _exact_or_prefix(value: Any) -> str:
    value = _dict(value)
    if value.get("exact"):
        return f"exact:{value['exact']}"
    if value.get("prefix"):
        return f"prefix:{value['prefix']}"
    return ""


@dataclass(frozen=True)
class _PrefixMatch:
    """An HTTP match on a URI prefix, with what else it requires, to compare with others."""

    rule: str
    match: str
    index: int
    prefix: str
    port: int
    method: str
    authority: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    without_headers: Mapping[str, str]

    @classmethod
    def of(cls, rule: str, match: Mapping[str, Any], name: str, index: int,
           ) -> _PrefixMatch | None:
        prefix = str(_dict(match.get("uri")).get("prefix") or "")
        if not prefix:
            return None
        return cls(rule, name, index, prefix, int(match.get("port") or 0),
                   _exact_or_prefix(match.get("method")) or "exact:GET",
                   _exact_or_prefix(match.get("authority")),
                   {str(k): _exact_or_prefix(v) for k, v in _dict(match.get("headers")).items()},
                   {str(k): _exact_or_prefix(v)
                    for k, v in _dict(match.get("queryParams")).items()},
                   {str(k): _exact_or_prefix(v)
                    for k, v in _dict(match.get("withoutHeaders")).items()})

    def covers(self, later: _PrefixMatch) -> bool:
        if not later.prefix.startswith(self.prefix) or later.port != self.port:
            return False
        for mine, theirs in ((self.method, later.method), (self.authority, later.authority)):
            if mine != theirs and not mine.startswith(theirs):
                return False
        for mine_map, theirs_map in ((self.headers, later.headers), (self.query, later.query),
                                     (self.without_headers, later.without_headers)):
            if len(mine_map) != len(theirs_map):
                return False
            for key, value in mine_map.items():
                if key not in theirs_map:
                    return False
                if value != theirs_map[key] and not value.startswith(theirs_map[key]):
                    return False
        return True


def _section(vs: Resource[Any], section: str) -> Iterator[Message]:
    rules = [_dict(r) for r in spec(vs).get(section) or []]
    seen: dict[str, int] = {}
    catch_all = -1
    prefixes: list[_PrefixMatch] = []

    def unreachable(rule: int, reason: str) -> Message:
        name = _rule_name(rules[rule], rule, section)
        return report(VS_UNREACHABLE_RULE, vs, f"VirtualService rule {name} is not used "
                      f"({reason})", "remove the rule, or move it before the rules that take "
                      "its traffic", ("spec", section, rule))

    def ineffective(rule: str, match: str, earlier: str, path: PathKey) -> Message:
        return report(VS_INEFFECTIVE_MATCH, vs, f"VirtualService rule {rule} match {match} is "
                      f"not used (duplicate/overlapping match in rule {earlier})",
                      "remove the match, or make it more specific than the earlier one", path)

    for i, rule in enumerate(rules):
        matches = [_dict(m) for m in rule.get("match") or []]
        if not matches:
            if catch_all >= 0:
                yield unreachable(i, "only the last rule can have no matches")
            catch_all = i
            continue
        duplicates = 0
        for j, match in enumerate(matches):
            if catch_all >= 0:
                yield unreachable(i, "route without matches defined before")
                continue
            key = _key(match)
            path = ("spec", section, i, "match", j)
            if key in seen:
                earlier = seen[key]
                yield ineffective(_rule_name(rule, i, section), _match_name(match, j, section),
                                  _rule_name(rules[earlier], earlier, section), path)
                duplicates += 1
                continue
            seen[key] = i
            if section == "http":
                found = _PrefixMatch.of(_rule_name(rule, i, section), match,
                                       _match_name(match, j, section), i)
                if found is not None:
                    prefixes.append(found)
        if duplicates == len(matches):
            yield unreachable(i, "all matches used by prior rules")
    for n, first in enumerate(prefixes):
        for then in prefixes[n + 1:]:
            if then.prefix != first.prefix and first.covers(then):
                yield ineffective(then.rule, f"{then.match} of prefix {then.prefix}",
                                  f"{first.match} of prefix {first.prefix} on {first.rule}",
                                  ("spec", section, then.index))


def _check(world: AnalysisInput) -> Iterator[Message]:
    for vs in world.of_kind(*VS):
        for section in ("http", "tcp", "tls"):
            yield from _section(vs, section)


ANALYZERS = (
    Analyzer("virtualservice.UnreachableRuleAnalyzer",
             "Checks for VirtualService rules and matches that earlier ones make unreachable",
             frozenset({VS}), _check),
)
