"""EnvoyFilter patch values as the Envoy messages they are: the JSON/YAML of an Envoy proto
(with `@type` for each Any) parsed by protobuf's json_format into the message its `applyTo`
names, as istiod builds them (xds.BuildXDSObjectFromStruct), strictly: an unknown field is
an error, not dropped."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import descriptor_pool, json_format, symbol_database
from google.protobuf.message import Message

from heddle.api.envoy_durations import normalise_durations

# The message each supported `applyTo` patches (what its `patch.value` must be).
VALUE_TYPES: dict[str, type[Message]] = {
    "LISTENER": listener_pb2.Listener,
    "NETWORK_FILTER": listener_components_pb2.Filter,
    "HTTP_FILTER": hcm.HttpFilter,
    "ROUTE_CONFIGURATION": route_pb2.RouteConfiguration,
    "VIRTUAL_HOST": route_components_pb2.VirtualHost,
    "HTTP_ROUTE": route_components_pb2.Route,
    "CLUSTER": cluster_pb2.Cluster,
}
# Packages whose messages may be named by `@type` (the protos the proxy is built with).
_PACKAGE_ROOTS = ("envoy.", "udpa.", "xds.", "google.protobuf.")


class PatchValueError(Exception):
    """A patch value that is not the message it must be; the message says why."""


def _type_urls(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "@type" and isinstance(item, str):
                yield item
            else:
                yield from _type_urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _type_urls(item)


def ensure_known(full_name: str) -> bool:
    """Load the generated module of an Envoy message type so json_format can resolve it (the
    modules of its proto package, imported on first use); False when there is none."""
    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName(full_name)
        return True
    except KeyError:
        pass
    if not full_name.startswith(_PACKAGE_ROOTS):
        return False
    package = full_name.rsplit(".", 1)[0]
    try:
        module = importlib.import_module(package)
    except ImportError:
        return False
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{info.name}")
    try:
        pool.FindMessageTypeByName(full_name)
        return True
    except KeyError:
        return False


def message_class(full_name: str) -> type[Message] | None:
    if not ensure_known(full_name):
        return None
    found: type[Message] = symbol_database.Default().GetSymbol(full_name)
    return found


def parse_value(apply_to: str, value: dict[str, Any]) -> Message:
    """The patch value as the message `apply_to` patches; PatchValueError saying what is wrong
    (an unknown `@type`, a field the message does not have, a value of the wrong type)."""
    kind = VALUE_TYPES.get(apply_to)
    if kind is None:
        raise PatchValueError(f"Heddle does not patch {apply_to}")
    for url in _type_urls(value):
        name = url.rsplit("/", 1)[-1]
        if not ensure_known(name):
            raise PatchValueError(f"unknown @type {url}: no such Envoy message")
    message = kind()

    def resolve(url: str) -> Any:
        found = message_class(url.rsplit("/", 1)[-1])
        return found.DESCRIPTOR if found is not None else None

    value = normalise_durations(value, kind.DESCRIPTOR, resolve)
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        raise PatchValueError(f"not a {kind.DESCRIPTOR.full_name}: {error}") from None
    return message
