"""The Prometheus add-on of `heddle up --prometheus`: Debian's `prometheus`, run and restarted
beside the control plane, scraping it and every proxy as Istio's add-on does in Kubernetes.

Its files live in the mesh home's `prometheus/` folder: the configuration, the pods it scrapes
(rewritten as workloads come and go; Prometheus notices by itself) and its data, removed when
the mesh stops.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from heddle.local.prometheus_config import (
    DEFAULT_PORT,
    DEFAULT_SCRAPE_INTERVAL,
    TARGETS_FILE,
    Pod,
    control_plane_pod,
    file_sd,
    prometheus_config,
    sidecar_pod,
)
from heddle.local.state import WorkloadState

DEBIAN_BINARY = "/usr/bin/prometheus"


class PrometheusMissing(Exception):
    """No `prometheus` binary to run; the message says how to get one."""


def find_binary() -> str:
    """Debian's prometheus (else one on PATH), or PrometheusMissing."""
    if os.access(DEBIAN_BINARY, os.X_OK):
        return DEBIAN_BINARY
    found = shutil.which("prometheus")
    if found is None:
        raise PrometheusMissing("--prometheus runs Prometheus, which is not installed: install "
                                "Debian's package (apt-get install prometheus) or put a "
                                "`prometheus` binary on PATH")
    return found


@dataclass(frozen=True)
class PrometheusOptions:
    port: int = DEFAULT_PORT
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL
    binary: str = DEBIAN_BINARY

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def folder(home: Path) -> Path:
    return home / "prometheus"


class PrometheusAddon:
    """Writes Prometheus's configuration and targets under `home`, and starts it."""

    def __init__(self, options: PrometheusOptions, home: Path, debug_port: int) -> None:
        self.options = options
        self.dir = folder(home)
        self.log = home / "logs" / "prometheus.log"
        self.debug_port = debug_port
        self.node = socket.gethostname()
        self._targets: str | None = None

    @property
    def config_file(self) -> Path:
        return self.dir / "prometheus.yml"

    @property
    def targets_file(self) -> Path:
        return self.dir / TARGETS_FILE

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = prometheus_config(str(self.targets_file), f"127.0.0.1:{self.options.port}",
                                   self.options.scrape_interval)
        # JSON is YAML: Prometheus reads it as it is.
        self.config_file.write_text(json.dumps(config, indent=1))
        if self._targets is None:
            self.update_targets([])

    def update_targets(self, workloads: Iterable[WorkloadState]) -> None:
        """The control plane and these workloads' proxies, as pods; written (atomically, as
        Prometheus may read it at any time) only when they changed."""
        pods: list[Pod] = [control_plane_pod(self.debug_port)]
        pods += [sidecar_pod(w.namespace, w.name, w.address, w.labels, w.prometheus)
                 for w in workloads]
        text = json.dumps(file_sd(pods, self.node), indent=1)
        if text == self._targets:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.targets_file)
        self._targets = text

    def command(self) -> list[str]:
        return [self.options.binary, f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.options.port}",
                f"--web.external-url={self.options.url}/"]

    async def start(self) -> asyncio.subprocess.Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            return await asyncio.create_subprocess_exec(
                *self.command(), stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True)
        finally:
            os.close(out)

    def remove_files(self) -> None:
        """Its configuration, targets and data: a mesh's metrics end with it."""
        shutil.rmtree(self.dir, ignore_errors=True)
