"""Who is on the other end of a stream: a Proxy from Envoy's node id and metadata."""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from google.protobuf.json_format import MessageToDict

from heddle.model.proxy import Proxy, parse_node_id
from heddle.model.snapshot import MeshSnapshot


class UnknownProxy(ValueError):
    pass


def node_metadata(node: base_pb2.Node) -> dict[str, Any]:
    return MessageToDict(node.metadata) if node.HasField("metadata") else {}


def proxy_from_node(node: base_pb2.Node, snapshot: MeshSnapshot) -> Proxy:
    """The agent puts LABELS, SERVICE_ACCOUNT and APP_ADDRESS in the node metadata; a
    WorkloadEntry of the same name and namespace fills in what it leaves out."""
    try:
        kind, address, name, namespace = parse_node_id(node.id)
    except ValueError as err:
        raise UnknownProxy(f"node id {node.id!r} is not TYPE~IP~NAME.NAMESPACE~DOMAIN") from err
    meta = node_metadata(node)
    entry = snapshot.registry.workload(namespace, name)
    labels = meta.get("LABELS") or (entry.label_map if entry else {})
    return Proxy(
        type=kind,
        name=name,
        namespace=namespace,
        address=address,
        app_address=str(meta.get("APP_ADDRESS") or address),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        service_account=str(meta.get("SERVICE_ACCOUNT")
                            or (entry.service_account if entry else "default")),
        workload_group=str(meta.get("WORKLOAD_GROUP", "")),
        low_port_offset=_offset(meta.get("LOW_PORT_OFFSET")),
    )


def _offset(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError) as err:
        raise UnknownProxy(f"node metadata LOW_PORT_OFFSET {value!r} is not a number") from err
