"""How the CLI shows configuration problems: `heddle status`'s configuration section, the
marks `heddle get` puts on resources whose file's last edit was refused, and the NACKs in
`heddle proxy-status`, each rendered from what the control plane's debug API serves."""

from __future__ import annotations

import argparse
import calendar
import re
import time
from typing import Any

import pytest

from heddle.api.loader import load_text
from heddle.cli import configuration, inspect
from heddle.config.store import ConfigStore
from heddle.local.state import MeshState
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.clock import FakeClock
from heddle.xds.debug import _resource_json
from heddle.xds.status import ProxyStatus

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: 100
"""


def broken_store(clock: FakeClock) -> ConfigStore:
    store = ConfigStore(clock=clock)
    store.put("/mesh/vs.yaml", load_text(VS, "/mesh/vs.yaml"))
    store.put("/mesh/vs.yaml", load_text(VS.replace("weight", "weigth"), "/mesh/vs.yaml"))
    return store


def test_status_lists_each_files_problems_by_line_and_says_the_edit_was_rejected() -> None:
    lines = configuration.section(broken_store(FakeClock()).problems().to_json())
    assert lines[0] == "configuration: 1 error, 0 warnings"
    assert lines[1] == ("  /mesh/vs.yaml: last edit rejected; its last good version stays in "
                        "force")
    assert lines[2].startswith('    /mesh/vs.yaml:9:7: error: [IST0106] VirtualService '
                               'default/reviews: spec.http[0].route[0].weigth: unknown field '
                               '"weigth" (did you mean "weight"?)')


async def test_status_says_a_file_was_fixed_and_when() -> None:
    clock = FakeClock()
    store = broken_store(clock)
    await clock.advance(5)
    store.put("/mesh/vs.yaml", load_text(VS, "/mesh/vs.yaml"))
    now = calendar.timegm(clock.wall().timetuple()) + 7
    assert configuration.section(store.problems().to_json(), now) == [
        "configuration: no problems", "  fixed 7s ago: /mesh/vs.yaml (1 problem gone)"]


def test_status_without_an_answer_says_the_configuration_is_unknown() -> None:
    assert configuration.section(None) == [
        "configuration: unknown (the control plane is not answering)"]


@pytest.fixture
def mesh_state(monkeypatch: pytest.MonkeyPatch) -> MeshState:
    state = MeshState("/mesh", 1, 15010, 15014)
    monkeypatch.setattr(inspect, "require_state", lambda: state)
    return state


def test_get_marks_the_resources_of_a_file_whose_last_edit_was_rejected(
        mesh_state: MeshState, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = broken_store(FakeClock())
    served = {"resources": _resource_json(MeshSnapshot.of(store), store.problems().rejected())}
    monkeypatch.setattr(inspect, "_debug_json", lambda _state, _path: served)
    inspect.get(argparse.Namespace(kind="vs", name="", namespace="", output=""))
    out, err = capsys.readouterr()
    assert re.split(r"\s{2,}", out.splitlines()[1]) == ["default", "reviews", "VirtualService",
                                                      "/mesh/vs.yaml:1 (last edit rejected)"]
    assert err.startswith("warning: the last edit of /mesh/vs.yaml was rejected, so its "
                          "resources above are its last good version; first error: "
                          "/mesh/vs.yaml:9:7: error: [IST0106]")


def test_proxy_status_shows_each_nack_with_envoys_reason(
        mesh_state: MeshState, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    status = ProxyStatus("sidecar~127.0.0.2~frontend.default~default.svc.cluster.local",
                         "sotw", "sidecar~127.0.0.2~frontend.default~default.svc.cluster.local-3")
    cluster = status.of("type.googleapis.com/envoy.config.cluster.v3.Cluster")
    cluster.sent_version = cluster.nacked_version = "7"
    cluster.acked_version = "6"
    cluster.nack_message = "malformed IP address: not-an-ip"
    served: list[dict[str, Any]] = [status.to_json()]
    monkeypatch.setattr(inspect, "_debug_json", lambda _state, _path: served)
    inspect.proxy_status(argparse.Namespace(output=""))
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["frontend.default", "#3", "sotw", "NACK"]
    assert out[2] == "NACK frontend.default #3 CDS version 7: malformed IP address: not-an-ip"


def test_times_are_shown_in_seconds_then_minutes() -> None:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_000_000))
    assert configuration._ago(at, 1_000_030) == "30s ago"
    assert configuration._ago(at, 1_000_000 + 600) == "10m ago"
