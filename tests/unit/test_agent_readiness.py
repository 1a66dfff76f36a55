"""The agent's readiness (what the control plane probes to keep a WorkloadEntry in EDS):
ready only while the sidecar has its configuration, the application runs, and it accepts
connections where its sidecar sends requests, as kubelet's tcpSocket probe would find."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from heddle.agent.agent import Agent, AgentConfig
from heddle.model.proxy import Proxy, ProxyType
from heddle.testing.clock import FakeClock
from heddle.testing.loopback import free_port

PROXY = Proxy(ProxyType.SIDECAR, "web", "default", "127.0.0.1", "127.0.0.1")


async def test_ready_only_while_the_application_runs_and_accepts_on_its_ports(
        tmp_path: Path) -> None:
    clock = FakeClock()  # the application's ports, read once, stay trusted on it
    agent = Agent(AgentConfig(PROXY, "127.0.0.1", 15010, tmp_path, command="serve"),
                  clock=clock)
    assert await agent._health("GET", "/healthz/ready") == (
        503, "not ready: the sidecar has no configuration yet")
    agent.envoy_ready.set()
    assert await agent._health("GET", "/healthz/ready") == (
        503, "not ready: the application is not running")
    agent.app = await asyncio.create_subprocess_exec(sys.executable, "-c",
                                                     "import time; time.sleep(30)")
    port = free_port()
    agent._inbound = (clock.now(), [("127.0.0.1", port)])  # as Envoy's inbound cluster says
    try:
        assert await agent._health("GET", "/healthz/ready") == (
            503, "not ready: the application does not accept connections yet")
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        try:
            assert await agent._health("GET", "/healthz/ready") == (200, "ready")
        finally:
            server.close()
            await server.wait_closed()
        agent.app.kill()
        await agent.app.wait()
        assert await agent._health("GET", "/healthz/ready") == (
            503, "not ready: the application is not running")
    finally:
        if agent.app.returncode is None:
            agent.app.kill()
            await agent.app.wait()
