"""Regenerate Heddle's API schemas and typed models from the upstream CRDs.

    python scripts/gen_api.py [CRD_DIR]

CRD_DIR defaults to ../shared/corpus/crds. For every kind Heddle serves this writes
`heddle/api/schemas/<group>_<Kind>.json` (the OpenAPI v3 schema of each served version,
descriptions dropped) and `heddle/api/models/_generated/<group>_<kind>.py` (pydantic models of
the storage version's `spec`, made by datamodel-code-generator). The core v1 kinds have no CRD;
their schemas are written by hand in heddle/api/schemas/core_*.json and their models are
generated from those the same way. Output is checked in; rerun this script after updating CRDs.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "heddle" / "api" / "schemas"
MODEL_DIR = ROOT / "heddle" / "api" / "models" / "_generated"

WANTED: dict[str, list[str]] = {
    "networking.istio.io": [
        "VirtualService",
        "DestinationRule",
        "Gateway",
        "ServiceEntry",
        "Sidecar",
        "WorkloadEntry",
        "WorkloadGroup",
        "EnvoyFilter",
    ],
    "security.istio.io": ["PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication"],
    "telemetry.istio.io": ["Telemetry"],
    "gateway.networking.k8s.io": [
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
        "GRPCRoute",
        "TCPRoute",
        "TLSRoute",
        "ReferenceGrant",
    ],
    # Rate limiting: the two APIs users already have besides EnvoyFilter.
    "gateway.envoyproxy.io": ["BackendTrafficPolicy"],
    "kuadrant.io": ["RateLimitPolicy"],
}
# Vendors' CRDs sit in folders of their own beside Istio's and Gateway API's.
CRD_SUBDIRS = ("envoy-gateway", "kuadrant")

# Keys that only document a schema; dropping them keeps the shipped files small.
DOC_KEYS = {"description", "example", "externalDocs"}


def _same(schema: dict[str, Any]) -> dict[str, Any]:
    return schema


def _with_http_route_retry(schema: dict[str, Any]) -> dict[str, Any]:
    """HTTPRoute `rules[].retry` is in Gateway API's experimental channel only (GEP-1731), and
    Istio and the conformance suite use it; the standard-channel CRD lacks it."""
    rule = schema["properties"]["spec"]["properties"]["rules"]["items"]
    rule["properties"]["retry"] = {
        "type": "object",
        "properties": {
            "codes": {"type": "array", "items": {"type": "integer", "minimum": 400,
                                                  "maximum": 599}},
            "attempts": {"type": "integer"},
            "backoff": {"type": "string",
                        "pattern": "^([0-9]{1,5}(h|m|s|ms)){1,4}$"},
        },
    }
    return schema


def _with_service_targets(schema: dict[str, Any]) -> dict[str, Any]:
    """Heddle lets a BackendTrafficPolicy target a Service (or ServiceEntry) too, for the
    sidecars of its workloads; the CRD's rules that allow only Gateway API kinds go, and
    Heddle's own check (heddle/api/semantics/rate_limits.py) names the kinds it takes."""
    spec = schema["properties"]["spec"]
    kinds_only = ("has(self.targetRef) ? self.targetRef.group",
                  "has(self.targetRef) ? self.targetRef.kind in",
                  "has(self.targetRefs) ? self.targetRefs.all(ref, ref.group",
                  "has(self.targetRefs) ? self.targetRefs.all(ref, ref.kind in")
    spec["x-kubernetes-validations"] = [
        rule for rule in spec.get("x-kubernetes-validations", [])
        if not rule["rule"].startswith(kinds_only)]
    return schema


EXPERIMENTAL_PATCHES = {
    ("BackendTrafficPolicy", "v1alpha1"): _with_service_targets,
    ("HTTPRoute", "v1"): _with_http_route_retry,
    ("HTTPRoute", "v1beta1"): _with_http_route_retry,
}


def strip_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: strip_docs(v)
            for k, v in node.items()
            if k not in DOC_KEYS or not isinstance(v, str)
        }
    if isinstance(node, list):
        return [strip_docs(v) for v in node]
    return node


def module_name(group: str, kind: str) -> str:
    return f"{group.split('.')[0] or 'core'}_{kind.lower()}"


def load_crds(crd_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    yaml = YAML(typ="safe")
    found: dict[tuple[str, str], dict[str, Any]] = {}
    paths = [*crd_dir.glob("*.yaml"),
             *(p for d in CRD_SUBDIRS for p in (crd_dir / d).glob("*.yaml"))]
    for path in sorted(paths):
        with path.open() as fh:
            for doc in yaml.load_all(fh):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    spec = doc["spec"]
                    found[(spec["group"], spec["names"]["kind"])] = spec
    return found


def schema_file(crd: dict[str, Any]) -> dict[str, Any]:
    """One JSON document per kind: served versions point at deduplicated schemas."""
    versions: dict[str, str] = {}
    schemas: dict[str, Any] = {}
    unserved: list[str] = []
    storage = ""
    for version in crd["versions"]:
        # Versions this channel no longer serves (TCPRoute v1alpha2, ...) are still what users'
        # YAML says: they are accepted with a warning naming the served version.
        if not version.get("served", False):
            unserved.append(version["name"])
        schema = strip_docs(version["schema"]["openAPIV3Schema"])
        schema = EXPERIMENTAL_PATCHES.get((crd["names"]["kind"], version["name"]), _same)(schema)
        key = next((k for k, s in schemas.items() if s == schema), version["name"])
        schemas.setdefault(key, schema)
        versions[version["name"]] = key
        if version.get("storage"):
            storage = version["name"]
    return {
        "group": crd["group"],
        "kind": crd["names"]["kind"],
        "plural": crd["names"]["plural"],
        "shortNames": crd["names"].get("shortNames", []),
        "namespaced": crd["scope"] == "Namespaced",
        "storageVersion": storage,
        "versions": versions,
        "unservedVersions": unserved,
        "schemas": schemas,
    }


def simplify_for_models(node: Any) -> Any:
    """Drop constraint-only keywords so code generation sees plain object shapes.

    Validation uses the full schema; models only need names and types.
    """
    if isinstance(node, list):
        return [simplify_for_models(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in {"oneOf", "allOf", "not", "x-kubernetes-validations", "default", "format"}:
            continue
        if key == "anyOf" and not all("type" in alt for alt in value):
            continue
        out[key] = simplify_for_models(value)
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("x-kubernetes-preserve-unknown-fields", False) and "properties" not in out:
        out.setdefault("type", "object")
        out["additionalProperties"] = True
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def generate_model(doc: dict[str, Any]) -> None:
    storage = doc["versions"][doc["storageVersion"]]
    schema = copy.deepcopy(doc["schemas"][storage])
    spec = schema.get("properties", {}).get("spec")
    root_name = f"{doc['kind']}Spec"
    if spec is None:  # kinds without a spec (Secret): model the top-level body fields
        body = {
            k: v
            for k, v in schema.get("properties", {}).items()
            if k not in {"apiVersion", "kind", "metadata", "status"}
        }
        spec = {"type": "object", "properties": body}
    spec = simplify_for_models(spec)
    spec["title"] = root_name
    out = MODEL_DIR / f"{module_name(doc['group'], doc['kind'])}.py"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{root_name}.json"
        src.write_text(json.dumps(spec))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "datamodel_code_generator",
                "--input", str(src),
                "--input-file-type", "jsonschema",
                "--output", str(out),
                "--output-model-type", "pydantic_v2.BaseModel",
                "--class-name", root_name,
                "--naming-strategy", "parent-prefixed",
                "--use-annotated",
                "--enable-faux-immutability",
                "--extra-fields", "ignore",
                "--disable-timestamp",
                "--formatters", "ruff-format",
                "--target-python-version", "3.11",
                "--use-union-operator",
                "--use-standard-collections",
                "--allow-population-by-field-name",
            ],
            check=True,
        )
    text = out.read_text()
    header = f"# Generated by scripts/gen_api.py from the {doc['group']} {doc['kind']} CRD.\n"
    out.write_text(header + "# Do not edit: rerun the script.\n" + text)


def main() -> None:
    crd_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/corpus/crds"
    crds = load_crds(crd_dir)
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    docs: list[dict[str, Any]] = []
    for group, kinds in WANTED.items():
        for kind in kinds:
            doc = schema_file(crds[(group, kind)])
            path = SCHEMA_DIR / f"{group}_{kind}.json"
            path.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
            docs.append(doc)
    for path in sorted(SCHEMA_DIR.glob("core_*.json")):
        docs.append(json.loads(path.read_text()))
    (MODEL_DIR / "__init__.py").write_text('"""Models generated by scripts/gen_api.py."""\n')
    for doc in docs:
        generate_model(doc)
        print(f"generated {doc['group'] or 'core'}/{doc['kind']}")


if __name__ == "__main__":
    main()
