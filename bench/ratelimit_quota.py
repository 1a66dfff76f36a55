"""The rate-limit service's CPU per request rate through real Envoy: per-request RLS against
quota leasing (RLQS), and how far leasing lets a limit be passed.

    python bench/ratelimit_quota.py [--rates 1000 5000 10000] [--seconds 10] [--proxies 2]
        [--modes rls lease]

For each mode and offered rate: two Envoys (one worker each, a direct-response route under
one global rule whose limit is half the offered rate), `heddle ratelimit` in its own process
serving both protocols, and a paced HTTP/1.1 load (keep-alive connections, pipelined per
10 ms tick) split 3:1 between the proxies. Reported: the rate reached, the service's CPU
(user + system seconds per second of its process), that CPU extrapolated to 500,000 RPS
(per request for RLS; leasing's is what buckets x proxies / interval costs, which requests do
not change, so it stays as measured), and for leasing the requests passed over the limit
(passed - limit x seconds; the limit also allows a burst of one window's worth). Prints JSON.
Bounded: every phase runs `seconds`, every wait has a timeout. On a small machine the load
generator is what caps the rate: `achieved_rps` says what was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.json_format import MessageToDict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heddle.api.resource import ResourceKey  # noqa: E402
from heddle.model.rate_limits import Attachment, LimitPolicy, LimitRule, Mode  # noqa: E402
from heddle.translate import rate_limit_quota  # noqa: E402
from heddle.translate.rate_limits import (  # noqa: E402
    GLOBAL_FILTER,
    global_route_config,
    rate_limit_cluster,
    service_config,
)

TICKS = os.sysconf("SC_CLK_TCK")
TARGET = 500_000
TICK = 0.01


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def policy(limit: int, leased: bool) -> LimitPolicy:
    return LimitPolicy(ResourceKey("gateway.envoyproxy.io", "BackendTrafficPolicy", "bench",
                                   "limit"), Mode.GLOBAL, (),
                       (LimitRule(0, (), limit, "SECOND", headers=False),), leased=leased)


def typed(message: Any) -> dict[str, Any]:
    from google.protobuf import any_pb2

    packed = any_pb2.Any()
    packed.Pack(message)
    return MessageToDict(packed)


def bootstrap(limited: LimitPolicy, listen: int, admin: int, rls: int) -> dict[str, Any]:
    """One listener, one direct-response route under the rule, the RLS/RLQS cluster."""
    from envoy.config.route.v3 import route_components_pb2 as rc
    from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2

    attachment = Attachment((limited,), "bench/route")
    # Through a cluster (the RLS filter skips direct responses): to this Envoy's own second
    # listener, which answers.
    route = rc.Route(name="r", match=rc.RouteMatch(prefix="/"),
                     route=rc.RouteAction(cluster="backend"))
    filters: list[dict[str, Any]] = []
    if limited.leased:
        rate_limit_quota.attach(route, attachment)
        for pair in rate_limit_quota.leased(attachment):
            filters.append({"name": rate_limit_quota.filter_name(*pair), "disabled": True,
                            "typed_config": typed(rate_limit_quota.filter_config(*pair))})
        filters.insert(0, {"name": rate_limit_quota.PLACE_FILTER, "typed_config": {
            "@type": "type.googleapis.com/"
                     "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"}})
    else:
        per_route = global_route_config(attachment)
        assert per_route is not None
        route.typed_per_filter_config[GLOBAL_FILTER].Pack(per_route)
        filters.append({"name": GLOBAL_FILTER, "typed_config": typed(_rls_filter(rate_limit_pb2))})
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    manager = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager." \
              "v3.HttpConnectionManager"
    answer = {"address": {"socket_address": {"address": "127.0.0.2", "port_value": listen}},
              "filter_chains": [{"filters": [{
                  "name": "envoy.filters.network.http_connection_manager", "typed_config": {
                      "@type": manager, "stat_prefix": "backend", "http_filters": [{
                          "name": "envoy.filters.http.router", "typed_config": {
                              "@type": "type.googleapis.com/"
                                       "envoy.extensions.filters.http.router.v3.Router"}}],
                      "route_config": {"virtual_hosts": [{
                          "name": "all", "domains": ["*"], "routes": [{
                              "match": {"prefix": "/"}, "direct_response": {
                                  "status": 200, "body": {"inline_string": "ok"}}}]}]}}}]}]}
    cluster = {"name": "backend", "type": "STATIC", "connect_timeout": "1s",
               "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [{
                   "endpoint": {"address": {"socket_address": {
                       "address": "127.0.0.2", "port_value": listen}}}}]}]}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "clusters": [MessageToDict(rate_limit_cluster(f"127.0.0.1:{rls}")), cluster],
            "listeners": [answer, {"address": {"socket_address": {"address": "127.0.0.1",
                                                          "port_value": listen}},
                           "filter_chains": [{"filters": [{
                               "name": "envoy.filters.network.http_connection_manager",
                               "typed_config": {
                                   "@type": "type.googleapis.com/envoy.extensions.filters."
                                            "network.http_connection_manager.v3."
                                            "HttpConnectionManager",
                                   "stat_prefix": "bench", "http_filters": filters,
                                   "route_config": {"virtual_hosts": [{
                                       "name": "all", "domains": ["*"],
                                       "routes": [MessageToDict(route)]}]}}}]}]}]}}


def _rls_filter(rate_limit_pb2: Any) -> Any:
    from envoy.config.core.v3 import config_source_pb2, grpc_service_pb2
    from envoy.config.ratelimit.v3 import rls_pb2

    return rate_limit_pb2.RateLimit(
        domain="heddle", failure_mode_deny=False, timeout={"seconds": 1},
        rate_limit_service=rls_pb2.RateLimitServiceConfig(
            grpc_service=grpc_service_pb2.GrpcService(
                envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
                    cluster_name="heddle-ratelimit")),
            transport_api_version=config_source_pb2.V3))


async def load(ports: list[int], shares: list[float], rate: int, seconds: float,
               connections: int) -> list[tuple[int, int]]:
    """Paced pipelined GETs: per proxy, (sent, passed)."""
    results = []

    async def one_proxy(port: int, proxy_rate: float) -> tuple[int, int]:
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
        request = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n"
        sent = passed = 0
        owed = 0.0
        start = time.monotonic()
        deadline = start + seconds

        async def exchange(index: int, count: int) -> int:
            """`count` GETs one after another on connection `index` (Envoy closes a
            connection that pipelines past a local reply): how many passed."""
            ok = 0
            for _ in range(count):
                reader, writer = streams[index]
                try:
                    writer.write(request)
                    status = await reader.readline()
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    await reader.readexactly(length)
                    ok += status[9:12] == b"200"
                except (OSError, asyncio.IncompleteReadError):
                    writer.close()
                    streams[index] = await asyncio.open_connection("127.0.0.1", port)
            return ok

        tick = 0
        while time.monotonic() < deadline:
            owed += proxy_rate * TICK
            batch, owed = int(owed), owed - int(owed)
            per = [batch // connections + (i < batch % connections) for i in range(connections)]
            done = await asyncio.wait_for(asyncio.gather(*(
                exchange(i, n) for i, n in enumerate(per) if n)), 5)
            sent += batch
            passed += sum(done)
            tick += 1
            delay = start + tick * TICK - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        for _, writer in streams:
            writer.close()
        return sent, passed

    results = await asyncio.gather(*(one_proxy(p, rate * s) for p, s in
                                     zip(ports, shares, strict=True)))
    return list(results)


def phase(mode: str, rate: int, seconds: float, proxies: int, folder: Path) -> dict[str, Any]:
    limit = max(1, rate // 2)
    limited = policy(limit, mode == "lease")
    config_dir = folder / f"{mode}-{rate}"
    config_dir.mkdir()
    (config_dir / "heddle.yaml").write_text(yaml.safe_dump(service_config([limited])))
    rls = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    service = subprocess.Popen([sys.executable, "-m", "heddle", "ratelimit", "--config-dir",
                                str(config_dir), "--port", str(rls)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    envoys, ports = [], []
    envoy = str(Path(sys.executable).with_name("envoy"))
    try:
        for i in range(proxies):
            port, admin = free_port(), free_port()
            path = config_dir / f"envoy-{i}.json"
            path.write_text(json.dumps(bootstrap(limited, port, admin, rls)))
            envoys.append(subprocess.Popen(
                [envoy, "-c", str(path), "--concurrency", "1", "--disable-hot-restart",
                 "-l", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ports.append(port)
        _wait_listening([*ports, rls], 20)
        shares = [0.75, 0.25] if proxies == 2 else [1 / proxies] * proxies
        asyncio.run(load(ports, shares, min(rate, 200), 6, 4))  # warm: buckets, leases
        cpu, wall = cpu_seconds(service.pid), time.monotonic()
        counts = asyncio.run(load(ports, shares, rate, seconds, 32))
        wall = time.monotonic() - wall
        cpu = cpu_seconds(service.pid) - cpu
    finally:
        for process in [service, *envoys]:
            process.terminate()
        for process in [service, *envoys]:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
    sent = sum(s for s, _ in counts)
    passed = sum(p for _, p in counts)
    achieved = sent / wall
    cores = cpu / wall
    result: dict[str, Any] = {
        "offered_rps": rate, "achieved_rps": round(achieved), "limit_per_second": limit,
        "service_cpu_cores": round(cores, 4),
        "service_cpu_us_per_request": round(1e6 * cpu / sent, 2) if sent else None,
        f"service_cores_at_{TARGET}_rps": round(
            cores * TARGET / achieved if mode == "rls" else cores, 3) if achieved else None,
        "passed": passed, "sent": sent,
        # Over the limit's rate for the time, and over that plus one window's burst (what a
        # token bucket of the limit itself would pass at most).
        "passed_over_limit": round(passed - limit * wall),
        "passed_over_limit_and_burst": round(passed - limit * (wall + 1)),
        "passed_over_limit_pct": round(100 * (passed - limit * wall) / (limit * wall), 1),
    }
    return result


def _wait_listening(ports: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nothing listens on {port}") from None
                time.sleep(0.1)


def run(rates: list[int], seconds: float, proxies: int,
        modes: tuple[str, ...] = ("rls", "lease")) -> dict[str, Any]:
    results: dict[str, Any] = {"seconds": seconds, "proxies": proxies, "cpus": os.cpu_count(),
                               "rls": [], "lease": []}
    with tempfile.TemporaryDirectory() as folder:
        for rate in rates:
            for mode in modes:
                results[mode].append(phase(mode, rate, seconds, proxies, Path(folder)))
    lease = [r["service_cpu_cores"] for r in results["lease"]]
    if lease and min(lease) > 0:
        mean = sum(lease) / len(lease)
        results["lease_cpu_spread_pct"] = round(100 * (max(lease) - min(lease)) / mean, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--proxies", type=int, default=2)
    parser.add_argument("--modes", nargs="+", choices=("rls", "lease"), default=["rls", "lease"])
    args = parser.parse_args()
    print(json.dumps(run(args.rates, args.seconds, args.proxies, tuple(args.modes)), indent=2))


if __name__ == "__main__":
    main()
