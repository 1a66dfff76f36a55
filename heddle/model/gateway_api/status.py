"""The status the control plane keeps for Gateway API resources, shaped as the spec's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class Condition:
    """A metav1.Condition: `status` True or False, a reason from the spec, a message."""

    type: str
    status: bool
    reason: str
    message: str

    def to_json(self, generation: int) -> dict[str, Any]:
        return {"type": self.type, "status": "True" if self.status else "False",
                "reason": self.reason, "message": self.message,
                "observedGeneration": generation}


@dataclass(frozen=True)
class ListenerStatus:
    name: str
    supported_kinds: tuple[str, ...]
    attached_routes: int
    conditions: tuple[Condition, ...]

    def to_json(self, generation: int) -> dict[str, Any]:
        return {"name": self.name,
                "supportedKinds": [{"group": GATEWAY_GROUP, "kind": k}
                                   for k in self.supported_kinds],
                "attachedRoutes": self.attached_routes,
                "conditions": [c.to_json(generation) for c in self.conditions]}


@dataclass(frozen=True)
class GatewayStatus:
    conditions: tuple[Condition, ...]
    listeners: tuple[ListenerStatus, ...] = ()
    addresses: tuple[tuple[str, str], ...] = ()  # (type, value)

    def to_json(self, generation: int) -> dict[str, Any]:
        out: dict[str, Any] = {"conditions": [c.to_json(generation) for c in self.conditions]}
        if self.addresses:
            out["addresses"] = [{"type": t, "value": v} for t, v in self.addresses]
        if self.listeners:
            out["listeners"] = [listener.to_json(generation) for listener in self.listeners]
        return out


@dataclass(frozen=True)
class RouteParentStatus:
    """`parent_ref`: the parentRef as written (kind, group and namespace filled in)."""

    parent_ref: tuple[tuple[str, Any], ...]
    controller_name: str
    conditions: tuple[Condition, ...]

    @property
    def accepted(self) -> bool:
        return any(c.type == "Accepted" and c.status for c in self.conditions)

    def to_json(self, generation: int) -> dict[str, Any]:
        return {"parentRef": dict(self.parent_ref), "controllerName": self.controller_name,
                "conditions": [c.to_json(generation) for c in self.conditions]}


@dataclass(frozen=True)
class RouteStatus:
    parents: tuple[RouteParentStatus, ...]

    def to_json(self, generation: int) -> dict[str, Any]:
        return {"parents": [p.to_json(generation) for p in self.parents]}


Status = GatewayStatus | RouteStatus


def condition(kind: str, reason: str, message: str, ok: bool | None = None) -> Condition:
    """A condition whose status is True when its reason is the condition's own name (the
    spec's success reasons: Accepted, ResolvedRefs, Programmed), unless `ok` says."""
    return Condition(kind, reason == kind if ok is None else ok, reason, message)
