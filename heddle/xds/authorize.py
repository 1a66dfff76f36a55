"""May this caller be the proxy its node claims to be? Istio's xDS authorization.

An ADS stream over mTLS carries the workload's verified SPIFFE identity; as istiod's
`checkConnectionIdentity`, the node's namespace (its id and NAMESPACE metadata) and its
SERVICE_ACCOUNT metadata must be the certificate's. As istiod's auto-registration
(`ensureProxyCanControlEntry`), a WorkloadEntry of the node's name and a WorkloadGroup the
node joins must be for that identity too, and joining a group needs a verified identity at
all: a stream on the plaintext port (loopback only, unauthenticated as Istio's 15010) may
read configuration but never add an endpoint.
"""

from __future__ import annotations

import dataclasses

from envoy.config.core.v3 import base_pb2

from heddle.ca.identity import Identity
from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Workload
from heddle.xds.proxies import node_metadata


class NotAuthorized(Exception):
    """The node claims something its certificate does not grant (PERMISSION_DENIED)."""


def authorize(proxy: Proxy, node: base_pb2.Node, identity: Identity | None,
              snapshot: MeshSnapshot) -> Proxy:
    """The proxy as the caller may be it; NotAuthorized when the node's claims and the
    identity disagree. A node that names no service account gets the certificate's."""
    if identity is None:
        if proxy.workload_group:
            raise NotAuthorized(
                f"joining WorkloadGroup {proxy.namespace}/{proxy.workload_group} needs a "
                "verified identity: connect to the secure port with the workload certificate")
        return proxy
    meta = node_metadata(node)
    for where, namespace in (("node id", proxy.namespace),
                             ("NAMESPACE metadata", str(meta.get("NAMESPACE", proxy.namespace)))):
        if namespace != identity.namespace:  # an empty one too
            raise NotAuthorized(f"the {where} names namespace {namespace}, not the "
                                f"certificate's ({identity})")
    claimed = str(meta.get("SERVICE_ACCOUNT") or "")
    if claimed and claimed != identity.service_account:
        raise NotAuthorized(f"service account {claimed} is not the certificate's ({identity})")
    proxy = dataclasses.replace(proxy, service_account=identity.service_account)
    entry = snapshot.registry.workload(proxy.namespace, proxy.name)
    if entry is not None and entry.service_account != identity.service_account:
        raise NotAuthorized(f"WorkloadEntry {entry.namespace}/{entry.name} runs as service "
                            f"account {entry.service_account}, not the certificate's "
                            f"({identity})")
    return proxy


def authorize_instance(instance: Workload, group: str, identity: Identity | None) -> None:
    """An instance of WorkloadGroup `group` takes the group template's service account:
    only a workload holding that identity may register one."""
    if identity is None:  # authorize() refuses this before; kept here for any other caller
        raise NotAuthorized(f"joining WorkloadGroup {instance.namespace}/{group} needs a "
                            "verified identity")
    if (instance.namespace, instance.service_account) != (identity.namespace,
                                                          identity.service_account):
        raise NotAuthorized(
            f"WorkloadGroup {instance.namespace}/{group} is for service account "
            f"{instance.namespace}/{instance.service_account}, not the certificate's "
            f"({identity})")
