"""Loading YAML: positions, typed specs, kinds kept but unused, and clear errors."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path
from textwrap import dedent

from untrusted_yaml import alias_bomb

from heddle.api.diagnostics import Severity
from heddle.api.loader import MAX_FILE_BYTES, load_paths, load_text
from heddle.api.models import VirtualServiceSpec
from heddle.api.yaml_documents import read_documents

VS_WITH_TYPO = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weigth: 50
"""


def test_misspelled_field_names_file_line_field_and_fix() -> None:
    result = load_text(VS_WITH_TYPO, "vs.yaml")
    [error] = result.errors
    assert str(error.position) == "vs.yaml:13:7"
    assert error.field == "spec.http[0].route[0].weigth"
    assert error.fix == 'did you mean "weight"?'
    assert str(error.resource) == "VirtualService default/reviews"
    assert result.resources == []


def test_bad_duration_is_rejected_with_its_position() -> None:
    text = VS_WITH_TYPO.replace("      weigth: 50\n", "").replace(
        "  - route:", "  - timeout: 10x\n    route:"
    )
    [error] = load_text(text, "vs.yaml").errors
    assert str(error.position) == "vs.yaml:9:5"
    assert error.field == "spec.http[0].timeout"
    assert "10x" in error.message and "duration" in error.message
    assert "10s" in error.fix


def test_valid_resource_gets_a_typed_spec_and_default_namespace() -> None:
    result = load_text(VS_WITH_TYPO.replace("weigth", "weight"), "vs.yaml")
    assert result.errors == []
    [vs] = result.resources
    assert isinstance(vs.spec, VirtualServiceSpec)
    assert vs.namespace == "default"
    assert vs.spec.hosts == ["reviews"]
    assert vs.spec.http is not None
    route = vs.spec.http[0].route
    assert route is not None and route[0].weight == 50
    assert vs.source is not None and vs.source.line == 1


def test_every_served_api_version_is_accepted() -> None:
    for version in ("v1", "v1beta1", "v1alpha3"):
        text = VS_WITH_TYPO.replace("weigth", "weight").replace("/v1\n", f"/{version}\n", 1)
        result = load_text(text, "vs.yaml")
        assert result.errors == [], version
        assert result.resources[0].api_version == f"networking.istio.io/{version}"


def test_unserved_api_version_names_the_served_ones() -> None:
    text = VS_WITH_TYPO.replace("weigth", "weight").replace("/v1\n", "/v2\n", 1)
    [error] = load_text(text, "vs.yaml").errors
    assert error.field == "apiVersion"
    assert "networking.istio.io/v1" in error.fix


def test_misspelled_kind_in_an_istio_group_is_an_error() -> None:
    text = VS_WITH_TYPO.replace("kind: VirtualService", "kind: VirtualSevice")
    [error] = load_text(text, "vs.yaml").errors
    assert error.fix == 'did you mean "VirtualService"?'


def test_kinds_heddle_does_not_use_are_kept_and_reported_as_info() -> None:
    text = """\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec: {replicas: 1}
    ---
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: web}
    """
    result = load_text(dedent(text), "k8s.yaml")
    assert result.errors == []
    assert [(o.kind, o.name) for o in result.unmanaged] == [
        ("Deployment", "web"),
        ("ServiceAccount", "web"),
    ]
    assert {d.severity for d in result.diagnostics} == {Severity.INFO}


def test_yaml_syntax_error_points_at_the_problem() -> None:
    result = load_text("apiVersion: v1\nkind: [Service\nmetadata: {}\n", "broken.yaml")
    [error] = result.errors
    assert error.position is not None and error.position.file == "broken.yaml"
    assert error.position.line == 3
    assert "syntax" in error.message


def test_unknown_metadata_field_is_rejected() -> None:
    text = VS_WITH_TYPO.replace("weigth", "weight").replace(
        "  name: reviews", "  name: reviews\n  lables: {app: x}"
    )
    [error] = load_text(text, "vs.yaml").errors
    assert error.field == "metadata.lables"
    assert error.fix == 'did you mean "labels"?'


def test_kubectl_list_items_are_loaded_with_their_positions() -> None:
    text = """\
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Service
      metadata: {name: web, namespace: shop}
      spec:
        ports: [{port: 80, protocol: HTTP}]
    """
    [error] = load_text(dedent(text), "list.yaml").errors
    assert error.field == "spec.ports[0].protocol"
    assert str(error.resource) == "Service shop/web"
    assert error.position is not None and (error.position.line, error.position.column) == (8, 24)


def test_null_fields_are_pruned_as_the_api_server_does() -> None:
    text = VS_WITH_TYPO.replace("weigth: 50", "weight: 50\n  tcp:\n")
    assert load_text(text, "vs.yaml").errors == []


def test_schema_defaults_are_applied() -> None:
    text = """\
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: web}
    spec:
      rules:
      - matches:
        - path: {value: /shop}
        backendRefs: [{name: web, port: 80}]
    """
    result = load_text(dedent(text), "route.yaml")
    assert result.errors == []
    rules = result.resources[0].spec.rules
    assert rules[0].matches[0].path.type == "PathPrefix"


def test_deprecated_version_warns_and_names_the_current_one() -> None:
    text = """\
    apiVersion: gateway.networking.k8s.io/v1alpha2
    kind: TCPRoute
    metadata: {name: echo}
    spec:
      rules:
      - backendRefs: [{name: echo, port: 9000}]
    """
    result = load_text(dedent(text), "tcp.yaml")
    assert result.errors == []
    [warning] = [d for d in result.diagnostics if d.severity is Severity.WARNING]
    assert "gateway.networking.k8s.io/v1" in warning.fix
    assert len(result.resources) == 1


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    text = alias_bomb(8)
    assert len(text) < 600
    tracemalloc.start()
    try:
        result = load_text(text, "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [error] = result.errors
    assert error.position is not None and error.position.file == "bomb.yaml"
    assert "aliases expand to more than 10000 nodes" in error.message
    assert "repeat fewer or smaller anchors" in error.fix
    assert result.unmanaged == []
    assert peak < 20 * 1024 * 1024  # 9**8 strings would take gigabytes


def test_the_alias_budget_counts_every_document_of_a_file() -> None:
    anchor = "[" + ",".join(["x"] * 100) + "]"
    document = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: NAME}\n"
                f"data:\n  a: &a {anchor}\n  b: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n")
    one = load_text(document.replace("NAME", "one"), "one.yaml")
    assert one.errors == [] and len(one.unmanaged) == 1
    many = "---\n".join(document.replace("NAME", f"cm-{i}") for i in range(12))
    [error] = load_text(many, "many.yaml").errors
    assert "aliases expand" in error.message


def test_anchors_and_merge_keys_within_the_budget_still_work() -> None:
    text = dedent("""\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          subsets:
          - name: v1
            labels: &v1 {version: v1}
          - name: v1-again
            labels: *v1
          trafficPolicy:
            connectionPool:
              tcp: &pool {maxConnections: 10}
            portLevelSettings:
            - port: {number: 9080}
              connectionPool:
                tcp: {<<: *pool, connectTimeout: 1s}
        """)
    result = load_text(text, "dr.yaml")
    assert result.errors == []
    [rule] = result.resources
    body = rule.body["spec"]
    assert body["subsets"][1]["labels"] == {"version": "v1"}
    assert body["trafficPolicy"]["portLevelSettings"][0]["connectionPool"]["tcp"] == {
        "maxConnections": 10, "connectTimeout": "1s"}


def test_nesting_deeper_than_the_limit_is_refused_with_its_position() -> None:
    [error] = load_text("a: " + "[" * 150 + "]" * 150 + "\n", "deep.yaml").errors
    assert "nested deeper than 100 levels" in error.message
    assert error.position is not None and error.position.line == 1
    [error] = load_text("a: " + "[" * 5000 + "]" * 5000 + "\n", "deeper.yaml").errors
    assert "exceeded maximum nesting depth" in error.message  # libyaml's own bound
    assert error.position is not None and error.position.file == "deeper.yaml"


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as out:
        out.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n")
        line = "  k%07d: " + "v" * 80 + "\n"
        for i in range(MAX_FILE_BYTES // len(line % 0) + 1):
            out.write(line % i)
    [error] = load_paths([big]).errors
    assert f"{big} is larger than 4 MiB" in error.message
    assert error.fix == "split it into smaller files"


def test_scalars_are_read_by_the_yaml_1_2_core_schema() -> None:
    text = dedent("""\
        bools: [true, False, TRUE]
        not-bools: [yes, no, on, off, y]
        nulls: [~, null, NULL]
        empty:
        ints: [42, -7, +3, 0o17, 0x1F, 017]
        floats: [1.5, -.5, 1e3, .inf, -.Inf]
        strings: [2001-12-14, 1_000, 0b11, "42", !!str 12, '']
        9000: port-keys-are-strings
        """)
    [document], errors = read_documents(text, "scalars.yaml")
    assert errors == []
    assert document.body == {
        "bools": [True, False, True],
        "not-bools": ["yes", "no", "on", "off", "y"],
        "nulls": [None, None, None],
        "empty": None,
        "ints": [42, -7, 3, 15, 31, 17],
        "floats": [1.5, -0.5, 1000.0, math.inf, -math.inf],
        "strings": ["2001-12-14", "1_000", "0b11", "42", "12", ""],
        "9000": "port-keys-are-strings",
    }
    assert str(document.position(("ints", 3))) == "scalars.yaml:5:20"


def test_a_duplicate_key_is_an_error_at_the_second_one() -> None:
    _, [error] = read_documents("a: 1\nb:\n  c: 1\n  c: 2\n", "dup.yaml")
    assert error.message == 'YAML error: duplicate key "c"'
    assert str(error.position) == "dup.yaml:4:3"


def test_chained_merge_keys_count_against_the_alias_budget() -> None:
    """`<<: [*a, *a, ...]`, chained, multiplies the merging work tenfold per level."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: merges}", "data:",
             "  m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    lines += [f"  m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 10) + "]}"
              for i in range(1, 10)]
    [error] = load_text("\n".join(lines) + "\n", "merges.yaml").errors
    assert "aliases expand to more than 10000 nodes" in error.message
    assert error.position is not None and error.position.file == "merges.yaml"
