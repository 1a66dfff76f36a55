"""Configuration others wrote, translated and put before real Envoy: every file of Istio's
samples and of istioctl's analyzer testdata that validates gives, for a sidecar in each of
its namespaces (and for each of its WorkloadEntries), resources `envoy --mode validate`
accepts. Valid YAML must never become config Envoy refuses."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from heddle.api.loader import load_paths
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.sidecar import sidecar_resources

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_shared_corpus import is_manifest


def _proxies(snapshot: MeshSnapshot) -> list[Proxy]:
    """A plain sidecar in every namespace the file uses, and one per WorkloadEntry."""
    namespaces = sorted({r.namespace for r in snapshot.resources() if r.namespace} | {"default"})
    found = [Proxy(ProxyType.SIDECAR, "probe", ns, f"10.250.{i}.1", f"10.250.{i}.1")
             for i, ns in enumerate(namespaces)]
    for workload in snapshot.registry.workloads[:5]:
        found.append(Proxy(ProxyType.SIDECAR, workload.name, workload.namespace,
                           workload.address, workload.address, workload.labels,
                           workload.service_account))
    return found


def _translations(root: Path) -> list[tuple[str, Any]]:
    """(what, bootstrap) for every validating manifest under `root` and each of its proxies."""
    found = []
    for path in sorted(root.rglob("*.yaml")):
        if not is_manifest(path.read_text(errors="replace")):
            continue
        result = load_paths([path])
        if result.errors or not result.resources:
            continue
        snapshot = MeshSnapshot.build(1, result.resources,
                                      mesh_config=MeshConfig.from_objects(result.unmanaged))
        for proxy in _proxies(snapshot):
            resources = sidecar_resources(snapshot, proxy)
            found.append((f"{path.relative_to(root)} for {proxy.name}.{proxy.namespace}",
                          sidecar_bootstrap(resources)))
    return found


def _refused(translations: list[tuple[str, Any]]) -> list[str]:
    def check(item: tuple[str, Any]) -> str:
        what, bootstrap = item
        out = validate_bootstrap(bootstrap)
        return "" if out.returncode == 0 else f"{what}: {(out.stdout + out.stderr)[-400:]}"

    with ThreadPoolExecutor(4) as pool:
        return [problem for problem in pool.map(check, translations) if problem]


def test_istio_samples_translate_to_config_envoy_accepts(corpus: Path) -> None:
    translations = _translations(corpus / "istio" / "samples")
    assert len(translations) > 50
    assert _refused(translations) == []


def test_analyzer_testdata_translates_to_config_envoy_accepts(corpus: Path) -> None:
    root = corpus / "istio" / "pkg" / "config" / "analysis" / "analyzers" / "testdata"
    translations = _translations(root)
    assert len(translations) > 50
    assert _refused(translations) == []
