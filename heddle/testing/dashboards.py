"""Grafana dashboards as a Prometheus user runs them: every panel's PromQL, with the template
variables filled in as Grafana fills them (query variables resolved against Prometheus in
their order, `All` as a regex of every option, `$__rate_interval` from the scrape interval).

Only what Istio's bundled dashboards use: `query_result(...)` and `custom` variables, the
`$name` and `${name}` forms, and the Prometheus data source's formatting of values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALL = "$__all"


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # the dashboard's file name
    panel_id: int
    title: str
    ref_id: str
    expr: str  # as written, variables and all

    @property
    def name(self) -> str:
        return f"{self.dashboard} #{self.panel_id} {self.title!r} {self.ref_id}"


def _panels(panels: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def panel_queries(path: Path) -> list[PanelQuery]:
    """Every PromQL target of every panel (rows' panels included), in the dashboard's order."""
    dashboard = json.loads(path.read_text())
    found = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            if expr.strip():
                found.append(PanelQuery(path.name, int(panel.get("id", 0)),
                                        str(panel.get("title") or ""),
                                        str(target.get("refId", "")), expr))
    return found


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
# The Prometheus data source escapes regex metacharacters in a multi-value variable's values.
_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|{}\[\]])")


def _regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\\\1", value)


@dataclass
class Variable:
    name: str
    multi: bool
    include_all: bool
    options: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)  # [ALL] for "All"

    def formatted(self) -> str:
        """The value as the Prometheus data source writes it into a query."""
        values = self.options if self.selected == [ALL] else self.selected
        if not (self.multi or self.include_all):
            return values[0] if values else ""
        if len(values) == 1 and self.selected != [ALL]:
            return _regex_escape(values[0])
        return "(" + "|".join(_regex_escape(v) for v in values) + ")"


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with each known variable replaced (unknown ones are left as written)."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values.get(name, match.group(0))
    return _VARIABLE.sub(one, expr)


def rate_interval(scrape_interval: float, interval: float) -> str:
    """Grafana's $__rate_interval: max($__interval + scrape interval, 4 * scrape interval)."""
    return f"{max(interval + scrape_interval, 4 * scrape_interval):g}s"


_QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.DOTALL)


def _result_text(series: Mapping[str, Any]) -> str:
    """A query_result() series as Grafana writes it for the variable's regex."""
    labels = dict(series.get("metric", {}))
    name = labels.pop("__name__", "")
    inside = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    value = series.get("value", [0, ""])
    return f"{name}{{{inside}}} {value[1]} {value[0]}"


def _js_regex(text: str) -> re.Pattern[str]:
    """A Grafana variable regex, written /pattern/flags."""
    if len(text) > 1 and text.startswith("/"):
        body, _, flags = text[1:].rpartition("/")
        return re.compile(body, re.IGNORECASE if "i" in flags else 0)
    return re.compile(text)


Query = Callable[[str], list[dict[str, Any]]]


def resolve_variables(path: Path, query: Query, choices: Mapping[str, list[str]],
                      builtins: Mapping[str, str]) -> dict[str, str]:
    """Every template variable of the dashboard at `path`, formatted for queries: each
    query variable's options from Prometheus (with the variables before it filled in), the
    selection `choices` gives (else the dashboard's saved one, else the first option)."""
    dashboard = json.loads(path.read_text())
    values = dict(builtins)
    for raw in dashboard.get("templating", {}).get("list", []):
        kind, name = raw.get("type"), raw["name"]
        if kind not in ("query", "custom"):
            continue
        variable = Variable(name, bool(raw.get("multi")), bool(raw.get("includeAll")))
        definition = raw.get("query")
        if isinstance(definition, dict):
            definition = definition.get("query", "")
        if kind == "custom":
            variable.options = [o.strip() for o in str(definition).split(",") if o.strip()]
        else:
            match = _QUERY_RESULT.match(str(definition))
            if match is None:
                raise ValueError(f"{path.name}: variable {name}: only query_result(...) "
                                 f"variables are supported, not {definition!r}")
            pattern = _js_regex(raw["regex"]) if raw.get("regex") else None
            options: list[str] = []
            for series in query(substitute(match.group(1), values)):
                text = _result_text(series)
                found = pattern.search(text) if pattern else None
                option = (found.group(1) if found and found.groups() else
                          text if pattern is None else None)
                if option is not None and option not in options:
                    options.append(option)
            variable.options = sorted(options)
        current = raw.get("current") or {}
        saved = current.get("value")
        saved_list = ([str(v) for v in saved] if isinstance(saved, list)
                      else [str(saved)] if saved else [])
        if name in choices:
            variable.selected = list(choices[name])
        elif saved_list == [ALL] or (saved_list and all(
                s in variable.options for s in saved_list)):
            variable.selected = saved_list
        else:
            variable.selected = variable.options[:1]
        values[name] = variable.formatted()
    return values
