"""A route's backendRefs -> VirtualService destinations, with the spec's ResolvedRefs reasons.

A Service backend is `NAME.NAMESPACE.svc.cluster.local` (a v1 Service or a ServiceEntry of
that host), an Istio `Hostname` backend the host itself; one in another namespace needs a
ReferenceGrant there. A backend that does not exist keeps its host (Envoy answers 500 for a
cluster it does not have, as the spec asks); one that may not be used or is of an unknown
kind is sent to `UNUSABLE_HOST`, which no service has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heddle.api.models.gateway_api_parts import BackendRef
from heddle.model.gateway_api.refs import Grants
from heddle.model.gateway_api.status import GATEWAY_GROUP
from heddle.registry.from_config import Registry

DOMAIN_SUFFIX = "svc.cluster.local"
UNUSABLE_HOST = "unusable-backend.heddle.invalid"
_UNUSABLE_PORT = 65535


@dataclass(frozen=True)
class RouteError:
    """Why a route's references are not all resolved: a ResolvedRefs reason and message."""

    reason: str
    message: str


def unusable(ref: BackendRef) -> dict[str, Any]:
    return {"host": UNUSABLE_HOST, "port": {"number": ref.port or _UNUSABLE_PORT}}


@dataclass(frozen=True)
class Backends:
    """Resolves the backendRefs of one route (`kind` in `namespace`)."""

    registry: Registry
    grants: Grants
    kind: str
    namespace: str

    def resolve(self, ref: BackendRef) -> tuple[dict[str, Any] | None, RouteError | None]:
        """The destination and the error to report: a destination with an error is kept
        (the backend is missing), None with an error is a backend that cannot be used."""
        group, kind = ref.group or "", ref.kind or "Service"
        namespace = ref.namespace or self.namespace
        if (group, kind) == ("", "Service"):
            if "." in ref.name:
                return None, RouteError("InvalidKind", "service name invalid; the name of "
                                        "the Service must be used, not the hostname")
            host = f"{ref.name}.{namespace}.{DOMAIN_SUFFIX}"
        elif (group, kind) == ("networking.istio.io", "Hostname"):
            if ref.namespace is not None:
                return None, RouteError("InvalidKind",
                                        "namespace may not be set with Hostname type")
            host = ref.name
        else:
            return None, RouteError("InvalidKind", f"referencing unsupported backendRef: "
                                    f"group {group!r} kind {kind!r}")
        if not self.grants.allows(GATEWAY_GROUP, self.kind, self.namespace, group, kind,
                                  namespace, ref.name):
            return None, RouteError("RefNotPermitted", f"backendRef {ref.name}/{namespace} not "
                                    f"accessible to a {self.kind} in namespace "
                                    f"{self.namespace!r} (missing a ReferenceGrant?)")
        if ref.port is None:
            return None, RouteError("UnsupportedValue", "port is required in backendRef")
        destination = {"host": host, "port": {"number": ref.port}}
        if self.registry.service(host) is None:
            return destination, RouteError("BackendNotFound", f"backend({host}) not found")
        return destination, None
