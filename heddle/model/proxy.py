"""The proxy a translation is for: which workload it fronts and how it is reached."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from heddle.registry.model import service_fqdn


class ProxyType(StrEnum):
    SIDECAR = "sidecar"
    ROUTER = "router"  # gateways, as Istio names them in node ids


@dataclass(frozen=True)
class Proxy:
    """A sidecar (or gateway) as the control plane sees it.

    `address` is the workload's pod IP: the sidecar listens there. `app_address` is where the
    application itself listens (its own loopback address in the local runtime), which only
    the sidecar's inbound clusters point at.
    """

    type: ProxyType
    name: str
    namespace: str
    address: str
    app_address: str
    labels: tuple[tuple[str, str], ...] = ()
    service_account: str = "default"
    workload_group: str = ""  # set when the proxy joins as an instance of a WorkloadGroup
    # Gateways only: added to a listener port below 1024 where the proxy may not bind it
    # (not root); 0 binds every port as written.
    low_port_offset: int = 0

    @property
    def id(self) -> str:
        """Istio's node id: TYPE~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local."""
        domain = service_fqdn("", self.namespace).lstrip(".")
        return f"{self.type}~{self.address}~{self.name}.{self.namespace}~{domain}"

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def service_cluster(self) -> str:
        """Istio's node cluster, which names the proxy in its spans: APP.NAMESPACE (the app
        label), else WORKLOAD.NAMESPACE (tracingServiceName APP_LABEL_AND_NAMESPACE)."""
        labels = self.label_map
        app = labels.get("app.kubernetes.io/name") or labels.get("app") or self.name
        return f"{app}.{self.namespace}"


def parse_node_id(node_id: str) -> tuple[ProxyType, str, str, str]:
    """`sidecar~127.0.10.2~frontend.default~default.svc.cluster.local` ->
    (SIDECAR, "127.0.10.2", "frontend", "default")."""
    kind, address, workload, _ = node_id.split("~")
    name, _, namespace = workload.rpartition(".")
    return ProxyType(kind), address, name, namespace
