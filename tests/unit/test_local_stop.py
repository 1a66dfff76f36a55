"""`heddle down` without a supervisor to ask: the processes the mesh's state names are
stopped, and so is whatever they left in their process groups, within the window plus a
few seconds; the agents' SDS sockets are removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heddle.local import control
from heddle.local.state import MeshState, WorkloadState, pid_alive
from heddle.model.sockets import sds_socket_for
from heddle.testing.waiting import wait_for

# An "agent" that starts a child in its own process group (as it starts certificate
# helpers), then hangs ignoring SIGTERM, or exits and leaves the child behind.
AGENT = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
if sys.argv[1] == "hung":
    time.sleep(60)
"""


@pytest.mark.parametrize("agent_is", ["hung", "gone"])
def test_stop_kills_the_agent_and_what_it_left_in_its_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent_is: str) -> None:
    monkeypatch.setenv("HEDDLE_HOME", str(tmp_path))
    home = tmp_path / "mesh"
    agent = subprocess.Popen([sys.executable, "-c", AGENT, agent_is], stdout=subprocess.PIPE,
                             start_new_session=True, env=dict(os.environ))
    assert agent.stdout is not None
    child = int(agent.stdout.readline())
    gone = subprocess.Popen(["true"])  # the supervisor: already dead
    gone.wait()
    workdir = home / "workloads" / "web.default"
    workdir.mkdir(parents=True)
    socket_file = sds_socket_for(workdir)
    socket_file.touch()
    state = MeshState(str(tmp_path), gone.pid, 1, 2, workloads={"web.default": WorkloadState(
        "web", "default", "127.0.40.2", "127.128.40.2", agent.pid, str(workdir))})
    state.save(home)
    try:
        start = time.monotonic()
        left = control.stop(home, state, timeout=1.0)
        took = time.monotonic() - start
        agent.wait(timeout=5)  # reap it: a zombie is not running, but a pid still
        wait_for(lambda: not pid_alive(child), 5, "the agent's child gone")
    finally:
        for pid in (agent.pid, child):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert left == []
    assert took < 1.0 + control.KILL_WAIT + 1
    assert not socket_file.exists()
    assert MeshState.load(home) is None
