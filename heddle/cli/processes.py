"""The long-running processes `heddle up` starts: the control plane, each agent, and the
global rate-limit service."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from heddle.cli.common import CliError, Commands, add_control_plane_flags, command

if TYPE_CHECKING:  # the light verbs must not load asyncio
    import asyncio


def configure_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def register(commands: Commands) -> None:
    parser = command(commands, "control-plane", control_plane, None,
                     description="Run the control plane: watch DIR, serve xDS to every proxy.")
    parser.add_argument("--dir", dest="config_dir", type=Path, default=None,
                        help="The watched configuration directory.")
    parser.add_argument("--options-file", type=Path, default=None,
                        help="Every option as one JSON file (heddle.app.MeshOptions; `heddle "
                             "up` writes one); the flags below are ignored then.")
    parser.add_argument("--ca-dir", type=Path, default=None,
                        help="CA directory: serve the CA on --ca-port.")
    add_control_plane_flags(parser)
    register_ratelimit(commands)
    # `heddle agent ...` is handed to the agent's own entry point before parsing (see
    # heddle.cli.main); this entry only lists it.
    command(commands, "agent", lambda _: None, None,
            description="Run one workload's sidecar (see `heddle agent --help`).")


def control_plane(args: argparse.Namespace) -> None:
    from heddle.agent.main import run_until_signalled
    from heddle.app import ControlPlane, MeshOptions

    if args.options_file is not None:
        try:
            options = MeshOptions.read(args.options_file)
        except (OSError, ValueError, TypeError) as err:
            raise CliError(str(err), 2) from err
    elif args.config_dir is None:
        raise CliError("give --dir DIR (or --options-file FILE)", 2)
    else:
        options = MeshOptions(
            args.config_dir, f"127.0.0.1:{args.xds_port}", debug_port=args.debug_port,
            debounce_quiet=args.debounce_quiet, debounce_max=args.debounce_max,
            ca_dir=args.ca_dir, secure_address=f"127.0.0.1:{args.ca_port}",
            join_address=f"127.0.0.1:{args.join_port}", cert_lifetime=args.cert_lifetime,
        rate_limit_address=f"127.0.0.1:{args.ratelimit_port}",
        rate_limit_redis=args.ratelimit_redis,
        rate_limit_replicas=",".join(args.ratelimit_replicas))
    configure_logging()
    run_until_signalled(ControlPlane(options).run)


def agent(argv: Sequence[str]) -> None:
    """Run one workload's sidecar: Envoy, its readiness, and the application.

    The options are the lean entry point's (`python -m heddle.agent --help`), which is what
    the local runtime starts: one agent runs beside every Envoy, without this CLI."""
    from heddle.agent.main import main

    main(argv)


def register_ratelimit(commands: Commands) -> None:
    parser = command(
        commands, "ratelimit", ratelimit,
        "Run the global rate-limit service (Envoy's RLS) on envoyproxy/ratelimit's YAML.",
        description="Run the global rate-limit service: Envoy's "
                    "envoy.service.ratelimit.v3 RateLimitService over gRPC, configured by "
                    "envoyproxy/ratelimit's YAML files (domain, descriptors) in DIR, "
                    "reloaded when they change.")
    parser.add_argument("--config-dir", type=Path, required=True, metavar="DIR",
                        help="The directory of rate-limit config files (*.yaml, *.yml).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="The address to listen on (default: loopback only).")
    parser.add_argument("--port", type=int, default=8081,
                        help="The gRPC port (default 8081, as envoyproxy/ratelimit; 0: any).")
    parser.add_argument("--redis", metavar="URL", default=None,
                        help="Count in Redis (redis://HOST:PORT/DB), shared by every "
                             "replica; default: in memory, for one replica.")
    parser.add_argument("--redis-timeout", type=float, default=0.1, metavar="SECONDS",
                        help="The most a decision waits for Redis before the failure mode "
                             "answers (default 0.1).")
    parser.add_argument("--failure-mode-deny", action="store_true",
                        help="When Redis cannot be reached, answer OVER_LIMIT (fail closed); "
                             "default: OK (fail open).")
    parser.add_argument("--domain-failure-mode", action="append", default=[],
                        metavar="DOMAIN=allow|deny",
                        help="The failure mode of one domain (repeatable), over the default.")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="Serve Prometheus metrics on this port (/metrics, on --host).")
    parser.add_argument("--merge-domains", action="store_true",
                        help="Merge files that define the same domain (envoyproxy/"
                             "ratelimit's MERGE_DOMAIN_CONFIG); default: an error.")
    parser.add_argument("--cache-key-prefix", default="",
                        help="A prefix for every counter key (CACHE_KEY_PREFIX upstream).")
    parser.add_argument("--no-near-cache", action="store_true",
                        help="Ask Redis even for keys known to be over their limit.")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="Run N service processes on the one port (SO_REUSEPORT), for "
                             "N cores; needs --redis (each worker's memory would be a limit "
                             "of its own). Worker i serves metrics on --metrics-port + i.")
    parser.add_argument("--event-loop", choices=("auto", "asyncio", "uvloop"),
                        default="auto",
                        help="auto (default): uvloop where it is installed (the `fast` "
                             "extra), else asyncio's.")


def ratelimit(args: argparse.Namespace) -> None:
    from heddle.agent.main import run_until_signalled
    from heddle.ratelimit.server import RateLimitOptions, RateLimitServer

    if not args.config_dir.is_dir():
        raise CliError(f"--config-dir {args.config_dir} is not a directory", 2)
    modes: dict[str, bool] = {}
    for item in args.domain_failure_mode:
        domain, _, mode = item.rpartition("=")
        if not domain or mode not in ("allow", "deny"):
            raise CliError(f"--domain-failure-mode {item!r}: write DOMAIN=allow or "
                           "DOMAIN=deny", 2)
        modes[domain] = mode == "deny"
    if args.redis_timeout <= 0:
        raise CliError("--redis-timeout must be more than 0 seconds", 2)
    if args.workers != 1:
        _run_workers(args)
        return
    options = RateLimitOptions(
        args.config_dir, f"{args.host}:{args.port}", redis_url=args.redis,
        redis_timeout=args.redis_timeout, failure_mode_deny=args.failure_mode_deny,
        domain_failure_mode_deny=modes,
        metrics_address=None if args.metrics_port is None else f"{args.host}:{args.metrics_port}",
        merge_domains=args.merge_domains, near_cache=not args.no_near_cache,
        key_prefix=args.cache_key_prefix)
    configure_logging()
    run_until_signalled(RateLimitServer(options).run, _loop_factory(args.event_loop))


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise CliError("--event-loop uvloop: uvloop is not installed (pip install "
                           "'heddle[fast]')", 2) from None
        return None
    return uvloop.new_event_loop


def _run_workers(args: argparse.Namespace) -> None:
    from heddle.ratelimit.workers import refusal, supervise

    refused = refusal(args.workers, args.redis, args.port)
    if refused is not None:
        raise CliError(refused, 2)
    argv = ["--config-dir", str(args.config_dir), "--host", args.host, "--port",
            str(args.port), "--redis", args.redis, "--redis-timeout", str(args.redis_timeout),
            "--cache-key-prefix", args.cache_key_prefix, "--event-loop", args.event_loop]
    for item in args.domain_failure_mode:
        argv += ["--domain-failure-mode", item]
    for flag, on in (("--failure-mode-deny", args.failure_mode_deny),
                     ("--merge-domains", args.merge_domains),
                     ("--no-near-cache", args.no_near_cache)):
        if on:
            argv.append(flag)
    status = supervise(argv, args.workers, args.metrics_port)
    if status:
        raise CliError(f"a rate-limit worker exited with status {status}", status)
