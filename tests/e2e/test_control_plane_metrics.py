"""The control plane's metrics on its debug port's /metrics, in istiod's names, from a real
mesh: connected proxies, pushes per xDS type, certificates signed, configuration events and
the convergence time of a change; /debug/configz lists the configuration in force."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("cp-metrics")) as running:
        yield running


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(mesh: LocalMesh) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples by name and labels, as Prometheus reads the text (names as written)."""
    text = httpx.get(f"http://127.0.0.1:{mesh.state().debug_port}/metrics",
                     trust_env=False, timeout=5).text
    found = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = tuple(sorted(LABEL.findall(match.group(2) or "")))
            found[(match.group(1), labels)] = float(match.group(3))
    return found


def test_istiod_names_count_what_the_control_plane_did(mesh: LocalMesh) -> None:
    proxies = len(mesh.state().workloads)
    found = scrape(mesh)
    assert found[("pilot_xds", (("version", "heddle"),))] == proxies
    for xds_type in ("cds", "eds", "lds", "rds"):
        assert found[("pilot_xds_pushes", (("type", xds_type),))] >= 1
    assert found[("citadel_server_success_cert_issuance_count", ())] >= proxies
    assert found[("citadel_server_csr_count", ())] >= found[
        ("citadel_server_success_cert_issuance_count", ())]
    assert found[("pilot_xds_push_time_count", ())] >= proxies
    assert found[("pilot_xds_config_size_bytes_count", (("type", "cds"),))] >= 1
    assert ("pilot_total_xds_rejects_total", ()) not in found  # istiod's names: no _total

    converged = found.get(("pilot_proxy_convergence_time_count", ()), 0.0)
    change = mesh.home / "extra-se.yaml"
    change.write_text("""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: metrics-probe}
spec:
  hosts: [metrics-probe.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
""")
    mesh.heddle("apply", "-f", str(change))
    event = ("pilot_k8s_cfg_events", (("event", "add"), ("type", "ServiceEntry")))
    wait_for(lambda: scrape(mesh).get(event, 0) >= 1, 20, "the added ServiceEntry counted")
    wait_for(lambda: scrape(mesh).get(("pilot_proxy_convergence_time_count", ()), 0)
             > converged, 20, "the change's push timed")
    assert scrape(mesh)[("pilot_push_triggers", (("type", "config"),))] >= 1


def test_configz_lists_the_configuration_in_force(mesh: LocalMesh) -> None:
    objects = httpx.get(f"http://127.0.0.1:{mesh.state().debug_port}/debug/configz",
                        trust_env=False, timeout=5).json()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("VirtualService", "backend") in names and ("WorkloadEntry", "client") in names
