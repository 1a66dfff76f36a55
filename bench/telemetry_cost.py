"""What Istio's telemetry costs a Heddle sidecar pair, side by side in one run at one fixed
request rate (an open model: requests are sent on schedule whether or not earlier ones have
been answered, so a slow proxy shows as latency, not as a lower rate):

    python bench/telemetry_cost.py [--rate 1000] [--seconds 15] [--rounds 3] [--warmup 3]
        [--sampling 1] [--idle-seconds 5] [--breakdown]

Three setups, each a client-side proxy -> a server-side proxy over mutual TLS -> the same
tiny application (bench/tiny_http_app.py):

    telemetry_on   a Heddle pair (`heddle up`: a client workload and a server workload) with
                   Istio's standard metrics, access logs (Istio's text format, to the proxy's
                   log file as `heddle up` writes it) and tracing at 1 % to an OTLP collector
                   (heddle.testing.trace_collector's, in this process; `--sampling`)
    telemetry_off  the same pair with all three off: `accessLogFile: ""`,
                   `defaultProviders: {metrics: []}`, no tracing provider
    bare_pair      two plain Envoys with mutual TLS and static bootstraps (bench/bare_envoy_pair.py)

and with `--breakdown`, Heddle pairs with one of the three each (`metrics_only`,
`access_logs_only`, `tracing_only`), to tell what each costs.

All run at once, and the load visits them in turn, `rounds` times (each round in
another order), so that a noisy shared machine weighs on each alike. Each visit sends
`warmup` seconds of load that is not counted, then `seconds` that is. The load is vegeta's
`attack` at `--rate` requests per second through the client proxy (its outbound HTTP-proxy
listener, 15001, as an application's `http_proxy` does), one target `GET http://server:8080/`.

Why vegeta and not k6, which the issue names: k6 is AGPL-3.0, which this project does not
take on, even as a tool; vegeta (MIT, Go) has the same open-model constant-rate attack.
It is not a Python package: build it once with
`GOBIN=~/.cache/heddle/bin go install github.com/tsenart/vegeta/v12@v12.12.0`
(or name a binary with `--vegeta` / `$VEGETA`).

Printed as JSON, per setup: p50 / p90 / p99 / max latency (ms, over every counted request of
every round, as `vegeta report` merges them) and per round; success ratio and the rate
reached; CPU over the counted windows (utime + stime from /proc) of each Envoy, of the two
agents (Heddle's only) and of the application, as vCPU and as vCPU per 1000 requests/s;
and evidence that the telemetry was on or off (istio_requests_total on the server's 15020,
spans at the collector, access-log bytes). Each round also says what the load generator and
the rest of the machine (other users; this bench's idle control planes) took meanwhile: on a
shared machine, a round whose rate fell short of `--rate` measured the machine, not the pair.
Then the ratios of each Heddle setup to the bare pair. Bounded: every phase has a timeout;
the default run takes about four minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bare_envoy_pair import OUTBOUND_PORT, bootstraps, start_envoy

from heddle.local.state import MeshState
from heddle.local.workloads import app_address
from heddle.testing.loopback import free_port, unique_subnet
from heddle.testing.trace_collector import Collector, otlp_collector

BENCH = Path(__file__).resolve().parent
APP = BENCH / "tiny_http_app.py"
APP_PORT = 8080
TARGET = f"http://server:{APP_PORT}/"
TICKS = os.sysconf("SC_CLK_TCK")
VEGETA_HINT = ("vegeta not found: build it with `GOBIN=~/.cache/heddle/bin go install "
               "github.com/tsenart/vegeta/v12@v12.12.0`, or name it with --vegeta or $VEGETA")

MESH = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: server}}
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {APP_PORT}, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: server}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: client}}
spec:
  address: SUBNET.1
  labels: {{app: client, version: v1}}
  serviceAccount: client
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: server
  annotations:
    heddle.dev/command: BENCH_APP_PORT={APP_PORT} exec {sys.executable} {APP}
spec:
  address: SUBNET.2
  labels: {{app: server, version: v1}}
  serviceAccount: server
"""
# Which telemetry each Heddle setup has: (metrics, access logs, tracing). The last three run
# with --breakdown only, to say which of the three costs what.
TELEMETRY = {"telemetry_on": (True, True, True), "telemetry_off": (False, False, False),
             "metrics_only": (True, False, False), "access_logs_only": (False, True, False),
             "tracing_only": (False, False, True)}
BREAKDOWN = ("metrics_only", "access_logs_only", "tracing_only")


def mesh_config(metrics: bool, access_logs: bool, collector_port: int | None,
                sampling: float) -> str:
    """The mesh config: metrics from Istio's built-in prometheus provider (else no metrics
    provider at all), the default access log (Heddle's default file, /dev/stdout, is the
    proxy's log file under `heddle up`; else none), `sampling` % of requests traced to the
    collector on `collector_port` (a literal address: no registry entry needed)."""
    mesh = ["accessLogFile: " + ("/dev/stdout" if access_logs else '""')]
    providers = {"metrics": "[prometheus]" if metrics else "[]"}
    if collector_port is not None:
        providers["tracing"] = "[otel]"
        mesh += [f"defaultConfig: {{tracing: {{sampling: {sampling}}}}}",
                 "extensionProviders:", "- name: otel",
                 f"  opentelemetry: {{service: 127.0.0.1, port: {collector_port}}}"]
    mesh.insert(1, "defaultProviders: {" + ", ".join(f"{k}: {v}" for k, v in providers.items())
                + "}")
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
            "data:\n  mesh: |\n" + "".join(f"    {line}\n" for line in mesh))


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`, all its threads (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, all processes), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / TICKS


def children_cpu_seconds() -> float:
    """utime + stime of this process's children that have been waited for (vegeta's)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def vegeta_binary(named: str | None) -> str:
    for candidate in (named, os.environ.get("VEGETA"), shutil.which("vegeta"),
                      str(Path.home() / ".cache" / "heddle" / "bin" / "vegeta")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit(VEGETA_HINT)


def through(proxy: str, timeout: float = 2.0) -> int:
    """One GET of TARGET through the HTTP proxy at `proxy` (HOST:PORT): its status, 0 if none."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://{proxy}"}))
    try:
        with opener.open(TARGET, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def wait_serving(proxy: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if through(proxy) == 200:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what}: no 200 through {proxy} within {timeout}s")


@dataclass
class Setup:
    """One pair under test: where its client proxy listens, and which processes to time."""

    name: str
    proxy: str
    envoys: dict[str, int]  # side -> pid
    agents: dict[str, int] = field(default_factory=dict)
    app: int = 0
    results: list[Path] = field(default_factory=list)  # vegeta's binary results, per round
    rounds: list[dict[str, Any]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # process -> seconds, counted windows
    wall: float = 0.0  # seconds of counted windows
    requests: int = 0
    idle: dict[str, float] = field(default_factory=dict)  # process -> vCPU with no load

    def pids(self) -> dict[str, int]:
        return {**{f"envoy_{k}": v for k, v in self.envoys.items()},
                **{f"agent_{k}": v for k, v in self.agents.items()},
                **({"app": self.app} if self.app else {})}


# --- the Heddle pairs -----------------------------------------------------------------------

class HeddleMesh:
    """`heddle up --detach` of the two-workload mesh in `folder`, with its own HEDDLE_HOME,
    loopback /24 and control-plane ports; `heddle down` on close."""

    def __init__(self, folder: Path, mesh_config: str) -> None:
        self.subnet = unique_subnet()
        self.config_dir = folder / "mesh"
        self.config_dir.mkdir(parents=True)
        (self.config_dir / "mesh.yaml").write_text(MESH.replace("SUBNET.", self.subnet))
        (self.config_dir / "mesh-config.yaml").write_text(mesh_config)
        self.home = folder / "home"
        self.env = {**os.environ, "HEDDLE_HOME": str(self.home)}
        self.heddle_argv = [sys.executable, "-m", "heddle"]

    def up(self) -> subprocess.Popen[str]:
        ports: list[int] = []
        while len(ports) < 5:
            port = free_port()
            if port not in ports:
                ports.append(port)
        flags = ["--xds-port", "--debug-port", "--ca-port", "--join-port", "--ratelimit-port"]
        args = [item for pair in zip(flags, map(str, ports), strict=True) for item in pair]
        return subprocess.Popen([*self.heddle_argv, "up", str(self.config_dir), "--detach",
                                 "--timeout", "120", *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def down(self) -> None:
        subprocess.run([*self.heddle_argv, "down"], env=self.env, capture_output=True,
                       timeout=90, check=False)

    def workdir(self, workload: str) -> Path:
        return self.home / "mesh" / "workloads" / f"{workload}.default"

    def setup(self, name: str) -> Setup:
        state = MeshState.load(self.home / "mesh")
        if state is None:
            raise RuntimeError(f"{name}: heddle up left no mesh state in {self.home}")
        sides = {"client": "client.default", "server": "server.default"}
        envoys = {side: int((self.workdir(side) / "envoy.pid").read_text()) for side in sides}
        agents = {side: state.workloads[key].agent_pid for side, key in sides.items()}
        app_pid = self.workdir("server") / "app.pid"
        app = int(app_pid.read_text()) if app_pid.exists() else 0
        return Setup(name, f"{self.subnet}1:{OUTBOUND_PORT}", envoys, agents, app)

    def evidence(self) -> dict[str, Any]:
        """What shows the telemetry on or off: the server's istio_requests_total (all
        series summed), the bytes of both sidecars' Envoy logs (access logs), rotated included."""
        requests = 0.0
        url = f"http://{self.subnet}2:15020/stats/prometheus"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=10) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith("istio_requests_total{"):
                    requests += float(line.rsplit(" ", 1)[1])
        logs = sum(path.stat().st_size for side in ("client", "server")
                   for path in self.workdir(side).glob("envoy.log*"))
        return {"server_istio_requests_total": int(requests), "envoy_log_bytes": logs}


@contextlib.contextmanager
def heddle_meshes(folder: Path, names: tuple[str, ...], sampling: float,
                  ) -> Iterator[dict[str, tuple[HeddleMesh, Collector | None]]]:
    """A mesh per name in TELEMETRY, each tracing setup with its own collector."""
    with contextlib.ExitStack() as stack:
        meshes: dict[str, tuple[HeddleMesh, Collector | None]] = {}
        for name in names:
            metrics, access_logs, tracing = TELEMETRY[name]
            collector = stack.enter_context(otlp_collector()) if tracing else None
            config = mesh_config(metrics, access_logs, collector.port if collector else None,
                                 sampling)
            meshes[name] = (HeddleMesh(folder / name, config), collector)
        try:
            ups = {name: mesh.up() for name, (mesh, _) in meshes.items()}  # all start at once
            for name, process in ups.items():
                out, _ = process.communicate(timeout=180)
                if process.returncode != 0:
                    raise RuntimeError(f"{name}: heddle up failed:\n{out[-3000:]}")
            for name, (mesh, _) in meshes.items():
                wait_serving(f"{mesh.subnet}1:{OUTBOUND_PORT}", 60, name)
            yield meshes
        finally:
            for mesh, _ in meshes.values():
                mesh.down()


# --- the bare pair --------------------------------------------------------------------------

@contextlib.contextmanager
def bare_pair(folder: Path) -> Iterator[Setup]:
    folder.mkdir(parents=True)
    subnet = unique_subnet()
    app_host = app_address(f"{subnet}2")
    client, server = bootstraps(folder, subnet, APP_PORT, (app_host, APP_PORT))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (folder / "app.log").open("ab") as log:
            processes.append(subprocess.Popen(
                [sys.executable, str(APP)], stdout=log, stderr=log, start_new_session=True,
                env={**os.environ, "HEDDLE_APP_ADDRESS": app_host,
                     "BENCH_APP_PORT": str(APP_PORT)}))
        processes.append(start_envoy(server, folder, "server-envoy"))
        processes.append(start_envoy(client, folder, "client-envoy"))
        proxy = f"{subnet}1:{OUTBOUND_PORT}"
        try:
            wait_serving(proxy, 60, "bare pair")
        except TimeoutError as err:
            logs = "".join((folder / f"{n}.log").read_text()[-1500:]
                           for n in ("app", "server-envoy", "client-envoy"))
            raise RuntimeError(f"{err}\n{logs}") from err
        app, server_envoy, client_envoy = processes
        yield Setup("bare_pair", proxy, {"client": client_envoy.pid, "server": server_envoy.pid},
                    app=app.pid)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


# --- load and figures -----------------------------------------------------------------------

def attack(vegeta: str, proxy: str, rate: int, seconds: float, output: Path) -> float:
    """vegeta at `rate`/s for `seconds` through `proxy`; its wall time."""
    env = {**os.environ, "HTTP_PROXY": f"http://{proxy}", "http_proxy": f"http://{proxy}",
           "NO_PROXY": "", "no_proxy": ""}
    started = time.monotonic()
    subprocess.run([vegeta, "attack", f"-rate={rate}/s", f"-duration={seconds}s",
                    "-timeout=10s", f"-output={output}"], input=f"GET {TARGET}\n", text=True,
                   env=env, check=True, timeout=seconds + 60, capture_output=True)
    return time.monotonic() - started


def report(vegeta: str, results: list[Path]) -> dict[str, Any]:
    out = subprocess.run([vegeta, "report", "-type=json", *map(str, results)],
                         capture_output=True, text=True, check=True, timeout=120)
    raw: dict[str, Any] = json.loads(out.stdout)
    latencies = raw["latencies"]

    def ms(key: str) -> float:
        return round(float(latencies[key]) / 1e6, 3)

    return {"p50_ms": ms("50th"), "p90_ms": ms("90th"), "p99_ms": ms("99th"),
            "max_ms": ms("max"), "mean_ms": ms("mean"), "requests": raw["requests"],
            # rate: requests sent per second; throughput: answered with success per second
            "rate": round(raw["rate"], 1), "throughput": round(raw["throughput"], 1),
            "success": raw["success"],
            "status_codes": raw["status_codes"], "errors": raw["errors"][:5]}


def visit(vegeta: str, setup: Setup, rate: int, seconds: float, warmup: float,
          folder: Path) -> None:
    """One round on `setup`: warm-up load (not counted), then the counted window."""
    if warmup > 0:
        attack(vegeta, setup.proxy, rate, warmup, folder / f"{setup.name}-warmup.bin")
    output = folder / f"{setup.name}-{len(setup.results)}.bin"
    pids = setup.pids()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    machine_before, load_before = machine_busy_seconds(), children_cpu_seconds()
    wall = attack(vegeta, setup.proxy, rate, seconds, output)
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    load = children_cpu_seconds() - load_before
    # What the rest of the machine (other users, this bench's idle meshes) took meanwhile.
    others = machine_busy_seconds() - machine_before - load - sum(used.values())
    for name, seconds_used in used.items():
        setup.cpu[name] = setup.cpu.get(name, 0.0) + seconds_used
    setup.wall += wall
    setup.results.append(output)
    figures = report(vegeta, [output])
    setup.requests += figures["requests"]
    setup.rounds.append({key: figures[key] for key in ("p50_ms", "p90_ms", "p99_ms", "success",
                                                        "rate", "throughput")}
                        | {"envoy_vcpu": round((used["envoy_client"] + used["envoy_server"])
                                               / wall, 3),
                           "load_generator_vcpu": round(load / wall, 3),
                           "rest_of_machine_vcpu": round(others / wall, 3)})


def measure_idle(setups: list[Setup], seconds: float) -> None:
    """Each process's vCPU with no load at all (timers, stats flushes, xDS, health checks),
    every setup at once: what a loaded window's CPU includes that no request causes."""
    before = {(s.name, n): cpu_seconds(pid) for s in setups for n, pid in s.pids().items()}
    started = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - started
    for setup in setups:
        setup.idle = {name: (cpu_seconds(pid) - before[setup.name, name]) / wall
                      for name, pid in setup.pids().items()}


def summary(vegeta: str, setup: Setup) -> dict[str, Any]:
    figures = report(vegeta, setup.results)
    per_second = setup.requests / setup.wall  # requests/s over the counted windows
    # vegeta's merged rate and throughput would span the gaps between rounds: per round only.
    del figures["throughput"]
    figures["rate"] = round(per_second, 1)
    vcpu = {name: seconds / setup.wall for name, seconds in setup.cpu.items()}
    envoys = vcpu["envoy_client"] + vcpu["envoy_server"]
    thousands = per_second / 1000
    figures["cpu"] = {
        "vcpu": {name: round(value, 3) for name, value in vcpu.items()},
        "envoy_pair_vcpu_per_1000_rps": round(envoys / thousands, 3),
        "envoy_vcpu_per_1000_rps_per_sidecar": round(envoys / 2 / thousands, 3),
        "envoy_client_vcpu_per_1000_rps": round(vcpu["envoy_client"] / thousands, 3),
        "envoy_server_vcpu_per_1000_rps": round(vcpu["envoy_server"] / thousands, 3)}
    if setup.idle:
        idle = setup.idle["envoy_client"] + setup.idle["envoy_server"]
        figures["cpu"]["idle_vcpu"] = {name: round(v, 3) for name, v in setup.idle.items()}
        # What the requests themselves cost: comparable across rates, unlike the total.
        figures["cpu"]["envoy_pair_vcpu_per_1000_rps_above_idle"] = round(
            (envoys - idle) / thousands, 3)
    if setup.agents:
        agents = sum(v for k, v in vcpu.items() if k.startswith("agent_"))
        figures["cpu"]["agents_vcpu_per_1000_rps"] = round(agents / thousands, 3)
    figures["rounds"] = setup.rounds
    return figures


def ratios(setups: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Each Heddle pair over the bare pair, and the telemetry pair over the one without:
    latency percentiles, the Envoys' CPU per request (total, and above idle)."""
    def ratio(top: float, bottom: float) -> float | None:
        return round(top / bottom, 3) if bottom > 0 else None

    def of(name: str, over: str) -> dict[str, float | None]:
        a, b = setups[name], setups[over]
        found = {key: ratio(a[key], b[key]) for key in ("p50_ms", "p90_ms", "p99_ms")}
        for key, label in (("envoy_pair_vcpu_per_1000_rps", "envoy_cpu"),
                           ("envoy_pair_vcpu_per_1000_rps_above_idle", "envoy_cpu_above_idle")):
            found[label] = ratio(a["cpu"][key], b["cpu"][key])
        return found

    found = {name: of(name, "bare_pair") for name in setups if name != "bare_pair"}
    found["on_vs_off"] = of("telemetry_on", "telemetry_off")
    for name in BREAKDOWN:
        if name in setups:
            found[f"{name}_vs_off"] = of(name, "telemetry_off")
    return found


def machine() -> dict[str, Any]:
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {"cpus": os.cpu_count(), "load_average": [float(x) for x in load]}


def run(rate: int = 1000, seconds: float = 15, rounds: int = 3, warmup: float = 3,
        vegeta: str | None = None, sampling: float = 1,
        idle_seconds: float = 5, breakdown: bool = False) -> dict[str, Any]:
    binary = vegeta_binary(vegeta)
    result: dict[str, Any] = {"rate": rate, "seconds": seconds, "rounds": rounds,
                              "warmup_seconds": warmup, "idle_seconds": idle_seconds,
                              "tracing_sampling_percent": sampling,
                              "load": "vegeta attack (open model)",
                              "machine_before": machine()}
    names = ("telemetry_on", "telemetry_off", *(BREAKDOWN if breakdown else ()))
    with tempfile.TemporaryDirectory(prefix="heddle-telemetry-cost-") as name:
        folder = Path(name)
        with heddle_meshes(folder, names, sampling) as meshes, \
                bare_pair(folder / "bare") as bare:
            setups = [*(mesh.setup(name) for name, (mesh, _) in meshes.items()), bare]
            measure_idle(setups, idle_seconds)
            evidence_before = {name: mesh.evidence() for name, (mesh, _) in meshes.items()}
            for round_ in range(rounds):
                turn = round_ % len(setups)
                for setup in setups[turn:] + setups[:turn]:
                    visit(binary, setup, rate, seconds, warmup, folder)
            figures = {setup.name: summary(binary, setup) for setup in setups}
            for name, (mesh, collector) in meshes.items():
                after, before = mesh.evidence(), evidence_before[name]
                figures[name]["telemetry"] = {
                    "server_istio_requests_total": after["server_istio_requests_total"],
                    "envoy_log_bytes_during_run": after["envoy_log_bytes"]
                    - before["envoy_log_bytes"],
                    "spans_at_collector": len(collector.spans) if collector else 0}
    result.update(figures)
    result["ratios"] = ratios(figures)
    result["machine_after"] = machine()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="requests per second")
    parser.add_argument("--seconds", type=float, default=15, help="counted seconds per visit")
    parser.add_argument("--rounds", type=int, default=3, help="visits to each setup")
    parser.add_argument("--warmup", type=float, default=3, help="uncounted seconds per visit")
    parser.add_argument("--vegeta", default=None, help="the vegeta binary")
    parser.add_argument("--sampling", type=float, default=1,
                        help="percent of requests the telemetry_on pair traces")
    parser.add_argument("--breakdown", action="store_true",
                        help="also pairs with only metrics, only access logs, only tracing")
    parser.add_argument("--idle-seconds", type=float, default=5,
                        help="CPU measured with no load first, this long")
    args = parser.parse_args()
    if (args.rate < 1 or args.seconds <= 0 or args.rounds < 1 or args.warmup < 0
            or args.idle_seconds <= 0):
        parser.error("--rate, --seconds, --rounds and --idle-seconds must be positive, "
                     "--warmup not negative")
    if not 0 < args.sampling <= 100:
        parser.error("--sampling is a percentage: above 0, at most 100")
    print(json.dumps(run(args.rate, args.seconds, args.rounds, args.warmup, args.vegeta,
                         args.sampling, args.idle_seconds, args.breakdown), indent=2))


if __name__ == "__main__":
    main()
