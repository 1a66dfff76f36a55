"""`heddle up | down | status | logs | exec`: running a whole mesh on this machine."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heddle.cli import configuration
from heddle.cli.common import (
    CliError,
    Commands,
    add_control_plane_flags,
    command,
    echo,
    mesh_home,
    print_table,
    require_state,
    running_state,
)
from heddle.local import control
from heddle.local.prometheus_config import DEFAULT_PORT as DEFAULT_PROMETHEUS_PORT
from heddle.local.prometheus_config import DEFAULT_SCRAPE_INTERVAL
from heddle.local.state import MeshState, WorkloadState, heddle_home, pid_alive

if TYPE_CHECKING:
    from heddle.app import MeshOptions
    from heddle.local.prometheus import PrometheusOptions
    from heddle.model.proxy import Proxy

# Heavy modules (the API models, the control plane's parts) are imported by `up`, the one
# verb that needs them, once its input has been checked.


def register(commands: Commands) -> None:
    up_parser = command(commands, "up", up, "Start the control plane and every workload the "
                        "configuration declares, each with its sidecar.")
    up_parser.add_argument("config", type=Path, metavar="PATH",
                           help="A directory of mesh YAML, or one YAML file.")
    up_parser.add_argument("-d", "--detach", action="store_true",
                           help="Run in the background; return once every workload is ready.")
    up_parser.add_argument("--delta", action="store_true",
                           help="Proxies use delta xDS instead of SotW.")
    add_control_plane_flags(up_parser)
    up_parser.add_argument("--timeout", type=float, default=90.0,
                           help="With --detach: how long to wait for readiness (s).")
    up_parser.add_argument("--restart-delay", type=float, default=10.0,
                           help="Before restarting an application that exited (s); each "
                                "next restart waits twice as long, up to 5 min, as kubelet's "
                                "back-off (reset after 10 min running).")
    up_parser.add_argument("--log-max-bytes", type=int, default=10 * 1024 * 1024,
                           help="Each workload's app, agent and Envoy logs rotate past this "
                                "size (4 older files kept).")
    up_parser.add_argument("--prometheus", action="store_true",
                           help="Also run Prometheus (Debian's `prometheus`), scraping the "
                                "control plane and every proxy with Istio's add-on "
                                "configuration; its data is removed by `heddle down`.")
    up_parser.add_argument("--prometheus-port", type=int, default=DEFAULT_PROMETHEUS_PORT,
                           help="With --prometheus: where it serves on 127.0.0.1.")
    up_parser.add_argument("--prometheus-scrape-interval", type=float,
                           default=DEFAULT_SCRAPE_INTERVAL, metavar="SECONDS",
                           help="With --prometheus: how often it scrapes (Istio's add-on: "
                                "15). Keep it above Envoy's stats flush (5 s), when histograms "
                                "change, or irate() of them shows nothing at times.")
    down_parser = command(commands, "down", down, "Stop the running mesh: drain and stop "
                          "every workload, then the control plane.")
    down_parser.add_argument("--timeout", type=float, default=30.0,
                             help="How long to wait for a clean stop (s).")
    command(commands, "status", status, "Workloads, their addresses, readiness and proxy "
            "sync state; then the configuration's errors and warnings by file:line, and the "
            "files fixed lately.")
    logs_parser = command(commands, "logs", logs, "Print a workload's application log (or "
                          "its sidecar's).")
    logs_parser.add_argument("workload", help="Workload name (or name.namespace).")
    which = logs_parser.add_mutually_exclusive_group()
    which.add_argument("--proxy", action="store_true", help="Envoy's log (with access logs).")
    which.add_argument("--agent", action="store_true", help="The agent's log.")
    exec_parser = command(commands, "exec", exec_in, "Run a command as if inside the "
                          "workload: its outbound traffic goes via its sidecar.")
    exec_parser.add_argument("workload", help="Workload name (or name.namespace).")
    exec_parser.add_argument("command", nargs=argparse.REMAINDER, help="The command, after --.")


# -- up ------------------------------------------------------------------------------------


def config_files(path: Path) -> list[Path]:
    """The YAML files `heddle up PATH` runs, or a CliError saying what is wrong with PATH."""
    from heddle.api.files import YAML_SUFFIXES, yaml_files

    try:
        is_dir = path.is_dir()
        exists = is_dir or path.exists()
    except OSError as err:
        raise CliError(f"{path}: cannot read it: {err.strerror}") from None
    if not exists:
        raise CliError(f"{path}: no such file or directory (give a directory of mesh YAML, "
                       "such as examples/hello, or one YAML file)")
    if not is_dir:
        if path.suffix not in YAML_SUFFIXES:
            raise CliError(f"{path} is not a YAML file (.yaml or .yml) nor a directory of them")
        if not os.access(path, os.R_OK):
            raise CliError(f"{path}: cannot read it (permission denied)")
        return [path]
    try:
        os.listdir(path)
    except OSError as err:
        raise CliError(f"{path}: cannot read the directory: {err.strerror} (check its "
                       "permissions)") from None
    files = yaml_files([path])
    if not files:
        raise CliError(f"{path} has no YAML files (.yaml or .yml); nothing to run (see "
                       "examples/hello for a mesh to start from)")
    return files


def _check_options(args: argparse.Namespace) -> dict[str, int]:
    ports = {"--xds-port": args.xds_port, "--ca-port": args.ca_port,
             "--join-port": args.join_port, "--debug-port": args.debug_port}
    if args.prometheus:
        ports["--prometheus-port"] = args.prometheus_port
    for flag, port in ports.items():
        if not 0 < port < 65536:
            raise CliError(f"{flag} {port}: a port is between 1 and 65535")
    if len(set(ports.values())) < len(ports):
        raise CliError(f"{', '.join(list(ports)[:-1])} and {list(ports)[-1]} must all differ "
                       f"(got {', '.join(f'{f} {p}' for f, p in ports.items())})")
    for flag, value in (("--timeout", args.timeout), ("--cert-lifetime", args.cert_lifetime),
                        ("--debounce-max", args.debounce_max),
                        ("--restart-delay", args.restart_delay),
                        ("--log-max-bytes", args.log_max_bytes),
                        ("--prometheus-scrape-interval", args.prometheus_scrape_interval)):
        if value <= 0:
            raise CliError(f"{flag} {value}: must be more than 0")
    if args.debounce_quiet < 0:
        raise CliError(f"--debounce-quiet {args.debounce_quiet}: must not be negative")
    return ports


def _validate(files: list[Path], config: Path) -> None:
    from heddle.api.diagnostics import Severity
    from heddle.api.loader import load_paths

    result = load_paths(files)
    for diagnostic in result.diagnostics:
        if diagnostic.severity is not Severity.INFO:
            echo(str(diagnostic), err=True)
    if result.errors:
        raise CliError(f"{config} has {len(result.errors)} error(s) (above); fix them before "
                       "starting")


def up(args: argparse.Namespace) -> int | None:
    config: Path = args.config
    files = config_files(config)
    ports = _check_options(args)
    prometheus = _prometheus(args)
    home = mesh_home()
    running = running_state()
    if running is not None:
        raise CliError(f"a mesh is already running in {home} (from {running.config_dir}); "
                       "stop it with `heddle down`, or set HEDDLE_HOME to run another")
    from heddle.local import claims
    from heddle.local.workloads import declared_addresses

    owner = str(heddle_home().resolve())
    try:
        with claims.locked():
            problem = claims.port_clash(ports)
            addresses = declared_addresses(files)
            problem = problem or claims.address_clash(addresses)
            if problem:
                raise CliError(problem)
            # Held by this process until the supervisor claims them for itself.
            claims.save(claims.Claim(owner, str(config.resolve()), os.getpid(),
                                     tuple(ports.values()), tuple(sorted(addresses))))
    except claims.ClaimsUnavailable as err:
        raise CliError(str(err)) from None
    try:
        _validate(files, config)
        return _start(args, config, home, prometheus)
    finally:
        claims.release(owner, os.getpid())


def _options(args: argparse.Namespace, config: Path) -> MeshOptions:
    from heddle.app import MeshOptions

    return MeshOptions(
        config, f"127.0.0.1:{args.xds_port}", debug_port=args.debug_port,
        debounce_quiet=args.debounce_quiet, debounce_max=args.debounce_max,
        secure_address=f"127.0.0.1:{args.ca_port}", join_address=f"127.0.0.1:{args.join_port}",
        cert_lifetime=args.cert_lifetime,
        rate_limit_address=f"127.0.0.1:{args.ratelimit_port}",
        rate_limit_redis=args.ratelimit_redis,
        rate_limit_replicas=",".join(args.ratelimit_replicas))


def _prometheus(args: argparse.Namespace) -> PrometheusOptions | None:
    """The add-on's options if `--prometheus` asks for it (and it is installed)."""
    from heddle.local.prometheus import PrometheusMissing, PrometheusOptions, find_binary

    if not args.prometheus:
        return None
    try:
        binary = find_binary()
    except PrometheusMissing as err:
        raise CliError(str(err)) from None
    return PrometheusOptions(args.prometheus_port, args.prometheus_scrape_interval, binary)


def _start(args: argparse.Namespace, config: Path, home: Path,
           prometheus: PrometheusOptions | None) -> int | None:
    from heddle.agent.main import run_until_signalled
    from heddle.app import local_mesh
    from heddle.cli.processes import configure_logging
    from heddle.local.narration import configure_foreground_logging

    home.mkdir(parents=True, exist_ok=True)
    (home / "state.json").unlink(missing_ok=True)
    mesh = local_mesh(_options(args, config), home, args.delta, narrate=not args.detach,
                      restart_delay=args.restart_delay, log_max_bytes=args.log_max_bytes,
                      prometheus=prometheus)
    if not args.detach:  # tell what happens until Ctrl-C (or SIGTERM) stops everything
        configure_foreground_logging()
        run_until_signalled(mesh.run)
        return None
    log = home / "supervisor.log"
    log_from = log.stat().st_size if log.exists() else 0
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the supervisor: on its own, logging to supervisor.log
        code = 1
        try:
            os.setsid()
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                          0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            configure_logging()
            run_until_signalled(mesh.run)
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    return _wait_until_ready(home, pid, args.timeout, log_from)


def _reaped(pid: int) -> bool:
    """Whether our child `pid` has exited (collecting it if so)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def _control_plane_ready(state: MeshState) -> bool:
    try:
        return control.http_get("127.0.0.1", state.debug_port, "/ready", 1.0)[0] == 200
    except OSError:
        return False


def _failed(home: Path, pid: int, state: MeshState | None, failure: control.Failure) -> int:
    """Stop everything the supervisor `pid` started (all its state names, else its process
    group) and say why the start failed."""
    control.stop(home, state or MeshState("", pid, 0, 0), timeout=10.0)
    what, *logs = failure.report()
    echo(f"error: {what}; everything it started was stopped", err=True)
    for line in logs:
        echo(line, err=True)
    return 1


def _wait_until_ready(home: Path, pid: int, timeout: float, log_from: int) -> int:
    """Until every workload is ready: then say so; at the first sign that one cannot be
    (or after `timeout`), stop everything and say why."""
    deadline = time.monotonic() + timeout
    state: MeshState | None = None
    try:
        while True:
            loaded = MeshState.load(home)
            if loaded is not None and loaded.supervisor_pid == pid:
                state = loaded
            if _reaped(pid):
                return _failed(home, pid, state, control.Failure(
                    "the supervisor exited", ((home / "supervisor.log", log_from),)))
            if state is not None and state.started:
                failure = control.start_failure(home, state)
                if failure is not None:
                    return _failed(home, pid, state, failure)
                if _control_plane_ready(state) and control.prometheus_ready(state) and all(
                        control.workload_ready(w) for w in state.workloads.values()):
                    break
            if time.monotonic() > deadline:
                waiting = sorted(k for k, w in (state.workloads if state else {}).items()
                                 if not control.workload_ready(w))
                first = (state.workloads[waiting[0]] if state and waiting else None)
                logs = control.workload_logs(first) if first else (
                    (home / "logs" / "control-plane.log",
                     state.control_plane_log_from if state else 0),)
                if not waiting and state and _control_plane_ready(state) and (
                        not control.prometheus_ready(state)):
                    waiting = ["Prometheus"]
                    logs = ((home / "logs" / "prometheus.log", state.prometheus_log_from),)
                return _failed(home, pid, state, control.Failure(
                    f"not ready within {timeout:g}s: "
                    f"{', '.join(waiting) or 'the control plane'}", logs))
            time.sleep(0.1)
    except KeyboardInterrupt:
        return _failed(home, pid, state, control.Failure("interrupted", ()))
    if not state.workloads:
        echo(f"mesh up: the control plane only ({state.config_dir} declares no workload with "
             "a 127.x address)")
    else:
        echo(f"mesh up: {len(state.workloads)} workloads from {state.config_dir}")
    if state.prometheus_url:
        echo(f"Prometheus at {state.prometheus_url}, scraping the control plane and every "
             "proxy")
    note = applied_note(home)
    if note:
        echo(note)
    return 0


def applied_note(home: Path) -> str:
    """A line saying that earlier `heddle apply`/`delete` changes are in force, if any."""
    from heddle.config.applied_layout import DELETED, RESOURCES

    applied = len(list((home / "applied" / RESOURCES).glob("*.yaml")))
    try:
        deleted = len(json.loads((home / "applied" / DELETED).read_text())["deleted"])
    except (OSError, ValueError, KeyError, TypeError):
        deleted = 0
    if not applied and not deleted:
        return ""
    return (f"over it: {applied} resource(s) `heddle apply` added or changed and {deleted} "
            f"`heddle delete` took away, kept in {home / 'applied'}")


# -- down, status, logs, exec ----------------------------------------------------------------


def down(args: argparse.Namespace) -> None:
    home = mesh_home()
    state = MeshState.load(home)
    if state is None:
        echo(f"no mesh is running in {home}")
        return
    control.stop(home, state, args.timeout)
    echo("mesh down")


def _rate_limit_service() -> str:
    """Where the control plane serves global rate limits (its options file says), and the
    counters' home; "" when unknown."""
    try:
        options = json.loads((mesh_home() / "control-plane.json").read_text())
    except (OSError, ValueError):
        return ""
    address = options.get("rate_limit_address") if isinstance(options, dict) else None
    if not address or not options.get("rate_limit_dir"):
        return ""
    redis = options.get("rate_limit_redis")
    return f"{address} (counters {'in Redis ' + redis if redis else 'in memory'})"


def _sync_summary(state: MeshState) -> dict[str, str] | None:
    """Per node id, its streams' xDS state; None when the control plane does not answer."""
    try:
        status_code, body = control.http_get("127.0.0.1", state.debug_port, "/debug/syncz")
        statuses = json.loads(body) if status_code == 200 else None
    except (OSError, ValueError):
        return None
    if not isinstance(statuses, list):
        return None
    summary = {}
    # A node id may have several streams: a connected one wins, else the newest (syncz
    # lists them oldest first).
    for entry in sorted(statuses, key=lambda s: bool(s["connected"])):
        states = {t["state"] for t in entry["types"].values()}
        text = "SYNCED" if states == {"SYNCED"} else ",".join(sorted(states))
        summary[entry["proxy"]] = text if entry["connected"] else "DISCONNECTED"
    return summary


def _problems(state: MeshState) -> dict[str, Any] | None:
    """The configuration's problems by file; None when the control plane does not answer."""
    try:
        status_code, body = control.http_get("127.0.0.1", state.debug_port, "/debug/problems")
        problems = json.loads(body) if status_code == 200 else None
    except (OSError, ValueError):
        return None
    return problems if isinstance(problems, dict) else None


def proxy_of(workload: WorkloadState) -> Proxy:
    from heddle.model.proxy import Proxy, ProxyType

    return Proxy(ProxyType(workload.proxy_type), workload.name, workload.namespace,
                 workload.address, workload.app_address, tuple(sorted(workload.labels.items())),
                 workload.service_account)


def _readiness(workload: WorkloadState) -> str:
    if control.workload_ready(workload, timeout=0.5):
        return "yes"
    problem = control.workload_problem(workload)
    return f"no ({problem.removeprefix('its ')})" if problem else "no"


def status(_: argparse.Namespace) -> None:
    from concurrent.futures import ThreadPoolExecutor

    state = require_state()
    keys = sorted(state.workloads)
    with ThreadPoolExecutor(max_workers=8) as pool:
        sync_future = pool.submit(_sync_summary, state)
        problems_future = pool.submit(_problems, state)
        ready = list(pool.map(lambda k: _readiness(state.workloads[k]), keys))
        sync = sync_future.result()
        problems = problems_future.result()
    echo(f"mesh from {state.config_dir}; control plane pid {state.control_plane_pid}, "
         f"xDS 127.0.0.1:{state.xds_port} (plaintext) and 127.0.0.1:{state.ca_port} "
         f"(mutual TLS), debug 127.0.0.1:{state.debug_port}"
         + (f", rate limits {limits}" if (limits := _rate_limit_service()) else ""))
    if state.prometheus_url:
        echo(f"Prometheus {state.prometheus_url}"
             + ("" if control.prometheus_ready(state) else " (not ready)"))
    rows = []
    for key, readiness in zip(keys, ready, strict=True):
        workload = state.workloads[key]
        proxy = "?" if sync is None else sync.get(proxy_of(workload).id, "NOT CONNECTED")
        rows.append([workload.name, workload.namespace, workload.address,
                     workload.app_address, readiness, proxy])
    print_table(["WORKLOAD", "NAMESPACE", "POD IP", "APP ADDRESS", "READY", "PROXY"], rows)
    gateways = [state.workloads[k] for k in keys if state.workloads[k].proxy_type == "router"]
    if gateways:
        echo()
        echo("gateways:")
        for gateway in gateways:
            echo(f"  {gateway.name}.{gateway.namespace} ({gateway.source}) at "
                 f"{gateway.address}: " + (", ".join(gateway.listeners)
                                           or "no listeners (no Gateway selects it)"))
    if sync is None:
        echo(f"control plane not answering on 127.0.0.1:{state.debug_port} (see "
             f"{mesh_home() / 'logs' / 'control-plane.log'}); proxy states unknown")
    if not pid_alive(state.control_plane_pid):
        echo("the control plane is not running; the supervisor restarts it")
    if sync is not None:
        echo()
        for line in configuration.section(problems):
            echo(line)


def _workload(name: str) -> WorkloadState:
    state = require_state()
    workload = state.workload(name)
    if workload is None:
        known = ", ".join(sorted(state.workloads)) or "none"
        raise CliError(f"no workload {name!r} (running: {known})")
    return workload


def logs(args: argparse.Namespace) -> None:
    found = _workload(args.workload)
    name = "envoy.log" if args.proxy else "agent.log" if args.agent else "app.log"
    path = Path(found.workdir) / name
    if not path.exists():
        raise CliError(f"{path} does not exist yet")
    sys.stdout.write(path.read_text(errors="replace"))


def exec_in(args: argparse.Namespace) -> int:
    from heddle.agent.environment import application_env

    env = application_env(proxy_of(_workload(args.workload)))
    words: list[str] = args.command
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise CliError("give a command after --, e.g. `heddle exec client -- curl -s "
                       "http://frontend:8080/`", 2)
    try:
        os.execvpe(words[0], words, env)
    except FileNotFoundError:
        raise CliError(f"command not found: {words[0]}", 127) from None
