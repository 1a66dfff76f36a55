"""Users' YAML as it arrives: Istio's samples, the Gateway API conformance manifests and
istioctl analyze's test inputs, all from ../shared/corpus."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from heddle.api.loader import LoadResult, load_text, yaml_files

EXPECTED_REJECTS = Path(__file__).with_name("analyzer_testdata_rejected.txt")

# The conformance suite fills these in before applying its manifests.
CONFORMANCE_PLACEHOLDERS = {
    "{GATEWAY_CLASS_NAME}": "heddle",
    "{GATEWAY_CONTROLLER_NAME}": "heddle.dev/gateway-controller",
}


def is_manifest(text: str) -> bool:
    """Helm values and mesh config files sit beside manifests but are not Kubernetes objects."""
    docs = YAML(typ="safe").load_all(text)
    return any(isinstance(doc, dict) and "apiVersion" in doc for doc in docs)


def load_tree(root: Path, placeholders: dict[str, str] | None = None) -> tuple[LoadResult, int]:
    result, skipped = LoadResult(), 0
    for path in yaml_files([root]):
        text = path.read_text()
        for old, new in (placeholders or {}).items():
            text = text.replace(old, new)
        if not is_manifest(text):
            skipped += 1
            continue
        result.extend(load_text(text, str(path.relative_to(root))))
    return result, skipped


def test_every_istio_sample_loads_and_validates_clean(corpus: Path) -> None:
    result, skipped = load_tree(corpus / "istio" / "samples")
    assert [str(d) for d in result.errors] == []
    assert len(result.resources) >= 100
    assert skipped == 3  # spire federation Helm values files


def test_every_gateway_api_conformance_manifest_loads_and_validates_clean(corpus: Path) -> None:
    result, skipped = load_tree(corpus / "gateway-api" / "conformance", CONFORMANCE_PLACEHOLDERS)
    assert [str(d) for d in result.errors] == []
    assert len(result.resources) >= 380
    assert skipped == 0


def test_analyzer_testdata_loads_and_exactly_the_invalid_resources_are_rejected(
    corpus: Path,
) -> None:
    root = corpus / "istio" / "pkg" / "config" / "analysis" / "analyzers" / "testdata"
    result, _ = load_tree(root)
    rejected = sorted({f"{d.position.file}: {d.resource}: {d.field}"
                       for d in result.errors if d.position and d.resource})
    expected = [line for line in EXPECTED_REJECTS.read_text().splitlines()
                if line and not line.startswith("#")]
    assert rejected == expected
    assert len(result.resources) >= 345  # all but the rejected ones above
