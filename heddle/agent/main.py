"""The agent's own entry point, `python -m heddle.agent`: the process the local runtime starts
beside every Envoy. One per workload, so it parses its options with `argparse` and imports
only the agent (no CLI framework, no translation, no pydantic models, no schemas)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` until SIGTERM or SIGINT sets `stop`."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="heddle agent",
        description="Run one workload's sidecar: Envoy, its readiness, and the application.")
    p.add_argument("--name", required=True, help="Workload name.")
    p.add_argument("--namespace", default="default")
    p.add_argument("--address", required=True,
                   help="The workload's pod IP; its sidecar listens here.")
    p.add_argument("--app-address", required=True, help="Where the application listens.")
    p.add_argument("--labels", default="{}", help="Workload labels as a JSON object.")
    p.add_argument("--service-account", default="default")
    p.add_argument("--workload-group", default="",
                   help="Join as an instance of this WorkloadGroup.")
    p.add_argument("--proxy-type", choices=("sidecar", "router"), default="sidecar",
                   help="router: a gateway (a standalone Envoy, no application).")
    p.add_argument("--low-port-offset", type=int, default=0,
                   help="A router's listener ports below 1024 listen this much higher "
                        "(where it may not bind them); 0: as written.")
    p.add_argument("--xds-host", default="127.0.0.1")
    p.add_argument("--xds-port", type=int, default=15010)
    p.add_argument("--workdir", type=Path, required=True, help="Where bootstrap and logs go.")
    p.add_argument("--cwd", type=Path, default=None,
                   help="The application's working directory.")
    p.add_argument("--delta", action=argparse.BooleanOptionalAction, default=False,
                   help="Use delta xDS.")
    p.add_argument("--hold-application", action=argparse.BooleanOptionalAction, default=True,
                   help="Start the app once Envoy is ready.")
    p.add_argument("--ca-address", default="",
                   help="Control plane xDS + CA over mutual TLS (host:port): with it, ADS "
                        "goes there.")
    p.add_argument("--join-address", default="",
                   help="Where the first CSR goes with the join token (host:port; default: "
                        "the CA host, port 15013).")
    p.add_argument("--root-cert", type=Path, default=None,
                   help="The mesh root certificate (PEM).")
    p.add_argument("--token-file", type=Path, default=None, help="File holding the join token.")
    p.add_argument("--cert-lifetime", type=float, default=0.0,
                   help="Ask for certificates this long (s).")
    p.add_argument("--restart-delay", type=float, default=10.0,
                   help="Seconds before the first restart of an application that exited; "
                        "each next waits twice as long, up to 5 min (kubelet's back-off).")
    p.add_argument("--log-max-bytes", type=int, default=10 * 1024 * 1024,
                   help="Rotate app.log, envoy.log and agent.log past this size.")
    p.add_argument("--app-metrics-port", type=int, default=0,
                   help="Where the application serves its own Prometheus metrics (merged "
                        "into 15020's), as its prometheus.io/port annotation says; 0: none.")
    p.add_argument("--app-metrics-path", default="/metrics")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="The application command (after --).")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    from heddle.agent.agent import Agent, AgentConfig
    from heddle.model.proxy import Proxy, ProxyType
    from heddle.model.scrape import AppMetrics

    args = parser().parse_args(argv)
    configure_logging()
    labels = json.loads(args.labels)
    proxy = Proxy(ProxyType(args.proxy_type), args.name, args.namespace, args.address,
                  args.app_address, tuple(sorted(labels.items())), args.service_account,
                  args.workload_group, low_port_offset=args.low_port_offset)
    words = [w for i, w in enumerate(args.command) if not (i == 0 and w == "--")]
    ca_address: str = args.ca_address
    config = AgentConfig(
        proxy, args.xds_host, args.xds_port, args.workdir, " ".join(words), args.cwd,
        args.delta, args.hold_application,
        ca_address=ca_address,
        join_address=args.join_address or (f"{ca_address.rsplit(':', 1)[0]}:15013"
                                           if ca_address else ""),
        root_cert=args.root_cert.read_bytes() if args.root_cert else b"",
        token=args.token_file.read_text().strip() if args.token_file else "",
        cert_lifetime=args.cert_lifetime, restart_delay=args.restart_delay,
        log_max_bytes=args.log_max_bytes,
        app_metrics=AppMetrics(args.app_address, args.app_metrics_port, args.app_metrics_path)
        if args.app_metrics_port else None)
    run_until_signalled(Agent(config).run)
