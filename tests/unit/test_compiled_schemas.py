"""The compiled schema check is a fast path only: it never passes what jsonschema rejects,
and the problems reported are always jsonschema's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heddle.api import schema_check
from heddle.api.compiled_schemas import CompiledSchemas
from heddle.api.kinds import KindInfo, lookup, split_api_version
from heddle.api.loader import load_text, yaml_files
from heddle.api.openapi import apply_defaults, to_json_schema
from heddle.api.yaml_documents import read_documents


def checked_bodies(root: Path) -> list[tuple[KindInfo, str, dict[str, Any]]]:
    """Every resource of a kind Heddle knows under `root`, defaulted as the loader does."""
    found = []
    for path in yaml_files([root]):
        documents, _ = read_documents(path.read_text(errors="replace"), str(path))
        for body in (d.body for d in documents):
            if not isinstance(body, dict) or not isinstance(body.get("apiVersion"), str):
                continue
            group, version = split_api_version(body["apiVersion"])
            info = lookup(group, str(body.get("kind")))
            if info is None or version not in info.versions:
                continue
            defaulted = apply_defaults(info.schema(version),
                                       {k: v for k, v in body.items() if k != "metadata"})
            found.append((info, version, {k: v for k, v in defaulted.items()
                                          if k not in ("apiVersion", "kind")}))
    return found


def test_the_compiled_check_never_passes_what_jsonschema_rejects(corpus: Path) -> None:
    compiled = CompiledSchemas(compile_after=1)
    passed = rejected = 0
    for info, version, body in checked_bodies(corpus):
        key = (info.group, info.kind, info.versions[version])
        quick = compiled.passes(key, lambda info=info, key=key: to_json_schema(
            info.schemas[key[2]]), body)
        problems = list(schema_check.validator_for(info, version).iter_errors(body))
        assert not (quick and problems), (info.kind, problems[:1])
        passed += quick
        rejected += bool(problems)
    assert passed > 800 and rejected > 10  # the corpus has both, and the fast path is used


def test_a_kind_used_often_reports_the_same_problems_as_before() -> None:
    document = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                "metadata: {name: vs-N}\nspec:\n  hosts: [a]\n"
                "  http: [{route: [{destination: {host: a}, weigth: 1}]}]\n")
    first = load_text(document.replace("N", "0"), "many.yaml").errors
    many = load_text("---\n".join(document.replace("N", str(i)) for i in range(50)),
                     "many.yaml").errors
    assert [str(e) for e in first] == [str(many[0])]
    assert len(many) == 50 and all('unknown field "weigth"' in e.message for e in many)
