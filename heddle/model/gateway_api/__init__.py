"""The Gateway API, as Istio's gateway controller runs it: GatewayClass, Gateway, HTTPRoute,
GRPCRoute, TCPRoute, TLSRoute and ReferenceGrant become Istio Gateways and VirtualServices
(which translation reads like any other) and the status the spec asks for. Pure: it reads
resources and the registry and returns what they come to."""

from heddle.model.gateway_api.convert import ROUTE_SEMANTICS, RULE_ORIGINS, Conversion, convert
from heddle.model.gateway_api.gateways import (
    BUILTIN_CLASSES,
    HEDDLE_CONTROLLER,
    ISTIO_CONTROLLER,
)

__all__ = ["BUILTIN_CLASSES", "HEDDLE_CONTROLLER", "ISTIO_CONTROLLER", "ROUTE_SEMANTICS",
           "RULE_ORIGINS", "Conversion", "convert"]
