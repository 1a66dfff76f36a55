"""Typed models of every kind's spec, generated from the upstream CRD schemas.

The classes live in `_generated/` (rewritten by scripts/gen_api.py); this module re-exports the
root spec model of each kind under a short, stable name.
"""

from heddle.api.models._generated.core_namespace import NamespaceSpec
from heddle.api.models._generated.core_secret import SecretSpec
from heddle.api.models._generated.core_service import ServiceSpec
from heddle.api.models._generated.gateway_backendtrafficpolicy import BackendTrafficPolicySpec
from heddle.api.models._generated.gateway_gateway import GatewaySpec as K8sGatewaySpec
from heddle.api.models._generated.gateway_gatewayclass import GatewayClassSpec
from heddle.api.models._generated.gateway_grpcroute import GRPCRouteSpec
from heddle.api.models._generated.gateway_httproute import HTTPRouteSpec
from heddle.api.models._generated.gateway_referencegrant import ReferenceGrantSpec
from heddle.api.models._generated.gateway_tcproute import TCPRouteSpec
from heddle.api.models._generated.gateway_tlsroute import TLSRouteSpec
from heddle.api.models._generated.kuadrant_ratelimitpolicy import RateLimitPolicySpec
from heddle.api.models._generated.networking_destinationrule import DestinationRuleSpec
from heddle.api.models._generated.networking_envoyfilter import EnvoyFilterSpec
from heddle.api.models._generated.networking_gateway import GatewaySpec
from heddle.api.models._generated.networking_serviceentry import ServiceEntrySpec
from heddle.api.models._generated.networking_sidecar import SidecarSpec
from heddle.api.models._generated.networking_virtualservice import VirtualServiceSpec
from heddle.api.models._generated.networking_workloadentry import WorkloadEntrySpec
from heddle.api.models._generated.networking_workloadgroup import WorkloadGroupSpec
from heddle.api.models._generated.security_authorizationpolicy import AuthorizationPolicySpec
from heddle.api.models._generated.security_peerauthentication import PeerAuthenticationSpec
from heddle.api.models._generated.security_requestauthentication import (
    RequestAuthenticationSpec,
)
from heddle.api.models._generated.telemetry_telemetry import TelemetrySpec

__all__ = [
    "AuthorizationPolicySpec",
    "BackendTrafficPolicySpec",
    "DestinationRuleSpec",
    "EnvoyFilterSpec",
    "GRPCRouteSpec",
    "GatewayClassSpec",
    "GatewaySpec",
    "HTTPRouteSpec",
    "K8sGatewaySpec",
    "NamespaceSpec",
    "PeerAuthenticationSpec",
    "RateLimitPolicySpec",
    "ReferenceGrantSpec",
    "RequestAuthenticationSpec",
    "SecretSpec",
    "ServiceEntrySpec",
    "ServiceSpec",
    "SidecarSpec",
    "TCPRouteSpec",
    "TLSRouteSpec",
    "TelemetrySpec",
    "VirtualServiceSpec",
    "WorkloadEntrySpec",
    "WorkloadGroupSpec",
]
