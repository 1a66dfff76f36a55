"""Which workloads of a mesh's configuration run on this machine, and at which addresses.

Light on purpose: `heddle up` reads the addresses here (YAML only, no validation) to refuse
a clash with a running mesh before the slow validation and before anything starts.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from heddle.api.diagnostics import Diagnostic
from heddle.api.files import UnreadableConfig, read_config_text

COMMAND_ANNOTATION = "heddle.dev/command"
# On a WorkloadGroup: start one instance per address listed; each joins the group itself.
ADDRESSES_ANNOTATION = "heddle.dev/addresses"


def app_address(pod_ip: str) -> str:
    """Where the application listens: 127.(A+128).B.C for pod IP 127.A.B.C (A < 127), so
    every pod IP has its own, and two meshes on one machine never share one. Only its own
    sidecar sends there; everyone else reaches the pod IP, where the sidecar listens. Pod IPs
    from 127.127.0.0 up share 127.255.B.C."""
    octets = [int(o) for o in pod_ip.split(".")]
    if octets[1] < 127:
        return f"127.{octets[1] + 128}.{octets[2]}.{octets[3]}"
    return f"127.255.{octets[2]}.{octets[3]}"


def is_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback and address.startswith("127.")
    except ValueError:
        return False


def group_addresses(annotations: Any) -> list[str]:
    """The local addresses a WorkloadGroup's `heddle.dev/addresses` annotation lists."""
    value = annotations.get(ADDRESSES_ANNOTATION, "") if isinstance(annotations, dict) else ""
    if not isinstance(value, str):
        return []
    return [a for a in (a.strip() for a in value.split(",")) if is_local(a)]


def _declared(body: Any) -> list[tuple[str, str]]:
    if not isinstance(body, dict) or not str(body.get("apiVersion", "")).startswith(
            "networking.istio.io/"):
        return []
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    name = f"{meta.get('name', '')}.{meta.get('namespace') or 'default'}"
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    if body.get("kind") == "WorkloadEntry" and is_local(str(spec.get("address", ""))):
        return [(str(spec["address"]), name)]
    if body.get("kind") == "WorkloadGroup":
        return [(a, f"{name} instance {i + 1}")
                for i, a in enumerate(group_addresses(meta.get("annotations")))]
    return []


def declared_addresses(files: list[Path]) -> dict[str, str]:
    """Local address -> the workload declaring it, read from the YAML without validating
    it (a file that does not parse is skipped: validation reports it)."""
    from heddle.api.yaml_documents import iter_documents

    found: dict[str, str] = {}
    for path in files:
        try:
            text = read_config_text(path)
        except (OSError, UnreadableConfig):
            continue
        for doc in iter_documents(text, str(path)):
            if isinstance(doc, Diagnostic):
                continue
            body = doc.body
            is_list = isinstance(body, dict) and body.get("kind") == "List"
            items = body.get("items") if is_list else [body]
            for item in items if isinstance(items, list) else []:
                for address, name in _declared(item):
                    found.setdefault(address, name)
    return found


GATEWAY_HOST_FROM = 250  # gateways take .250, .249, ... of the mesh's loopback /24
LOW_PORT_OFFSET = 8000  # 80 -> 8080, 443 -> 8443: the ports Istio's unprivileged gateways use


def gateway_addresses(workload_addresses: list[str], count: int) -> list[str]:
    """Pod IPs for `count` gateways: from .250 down in the /24 of the mesh's first local
    workload (127.0.0.0/24 without one), skipping addresses a workload has, so that a
    second mesh in another /24 never shares a gateway's address."""
    local = sorted(a for a in workload_addresses if is_local(a))
    prefix = local[0].rsplit(".", 1)[0] if local else "127.0.0"
    taken = set(local)
    found: list[str] = []
    host = GATEWAY_HOST_FROM
    while len(found) < count and host > 1:
        address = f"{prefix}.{host}"
        if address not in taken:
            found.append(address)
        host -= 1
    return found


def low_port_offset() -> int:
    """How far a gateway's ports below 1024 move: 0 where this user may bind them (root, or
    `net.ipv4.ip_unprivileged_port_start` 0), else LOW_PORT_OFFSET."""
    if os.geteuid() == 0:
        return 0
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        start = 1024
    return 0 if start == 0 else LOW_PORT_OFFSET
