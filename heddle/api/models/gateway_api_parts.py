"""Names for the parts of Gateway API specs that the conversion to Istio passes around.

As in virtual_service_parts: the generated models have a class per place a part is written
(a filter of a rule or of a backendRef, of an HTTPRoute or of a GRPCRoute...), all of one
shape; each union names a part wherever it was written.
"""

from __future__ import annotations

from typing import TypeAlias

from heddle.api.models._generated import gateway_gateway as gw
from heddle.api.models._generated import gateway_grpcroute as grpc
from heddle.api.models._generated import gateway_httproute as http
from heddle.api.models._generated import gateway_tcproute as tcp
from heddle.api.models._generated import gateway_tlsroute as tls

Listener: TypeAlias = gw.GatewaySpecListener
ListenerTLS: TypeAlias = gw.GatewaySpecListenerTls
CertificateRef: TypeAlias = gw.GatewaySpecListenerTlsCertificateRef

HTTPRule: TypeAlias = http.HTTPRouteSpecRule
HTTPMatch: TypeAlias = http.HTTPRouteSpecRuleMatch
GRPCRule: TypeAlias = grpc.GRPCRouteSpecRule
GRPCMatch: TypeAlias = grpc.GRPCRouteSpecRuleMatch

# Where a route attaches: a Gateway (and a listener of it) or a Service (GAMMA).
ParentRef: TypeAlias = (
    http.HTTPRouteSpecParentRef | grpc.GRPCRouteSpecParentRef | tcp.TCPRouteSpecParentRef
    | tls.TLSRouteSpecParentRef
)
# group, kind, name, namespace, port (and weight): what a route or a mirror sends to.
BackendRef: TypeAlias = (
    http.HTTPRouteSpecRuleBackendRef | grpc.GRPCRouteSpecRuleBackendRef
    | tcp.TCPRouteSpecRuleBackendRef | tls.TLSRouteSpecRuleBackendRef
    | http.HTTPRouteSpecRuleFilterRequestMirrorBackendRef
    | http.HTTPRouteSpecRuleBackendRefFilterRequestMirrorBackendRef
    | grpc.GRPCRouteSpecRuleFilterRequestMirrorBackendRef
    | grpc.GRPCRouteSpecRuleBackendRefFilterRequestMirrorBackendRef
)
WeightedBackendRef: TypeAlias = (
    http.HTTPRouteSpecRuleBackendRef | grpc.GRPCRouteSpecRuleBackendRef
    | tcp.TCPRouteSpecRuleBackendRef | tls.TLSRouteSpecRuleBackendRef
)
# A filter of a rule or of one backend, of an HTTPRoute or a GRPCRoute.
Filter: TypeAlias = (
    http.HTTPRouteSpecRuleFilter | http.HTTPRouteSpecRuleBackendRefFilter
    | grpc.GRPCRouteSpecRuleFilter | grpc.GRPCRouteSpecRuleBackendRefFilter
)
HeaderFilter: TypeAlias = (
    http.HTTPRouteSpecRuleFilterRequestHeaderModifier
    | http.HTTPRouteSpecRuleFilterResponseHeaderModifier
    | http.HTTPRouteSpecRuleBackendRefFilterRequestHeaderModifier
    | http.HTTPRouteSpecRuleBackendRefFilterResponseHeaderModifier
    | grpc.GRPCRouteSpecRuleFilterRequestHeaderModifier
    | grpc.GRPCRouteSpecRuleFilterResponseHeaderModifier
    | grpc.GRPCRouteSpecRuleBackendRefFilterRequestHeaderModifier
    | grpc.GRPCRouteSpecRuleBackendRefFilterResponseHeaderModifier
)
MirrorFilter: TypeAlias = (
    http.HTTPRouteSpecRuleFilterRequestMirror | http.HTTPRouteSpecRuleBackendRefFilterRequestMirror
    | grpc.GRPCRouteSpecRuleFilterRequestMirror
    | grpc.GRPCRouteSpecRuleBackendRefFilterRequestMirror
)
RedirectFilter: TypeAlias = (
    http.HTTPRouteSpecRuleFilterRequestRedirect
    | http.HTTPRouteSpecRuleBackendRefFilterRequestRedirect
)
RewriteFilter: TypeAlias = (
    http.HTTPRouteSpecRuleFilterUrlRewrite | http.HTTPRouteSpecRuleBackendRefFilterUrlRewrite
)
CorsFilter: TypeAlias = (
    http.HTTPRouteSpecRuleFilterCors | http.HTTPRouteSpecRuleBackendRefFilterCors
)
# The filters only an HTTPRoute has (redirect, URL rewrite, CORS).
HTTPFilter: TypeAlias = http.HTTPRouteSpecRuleFilter | http.HTTPRouteSpecRuleBackendRefFilter
HTTP_FILTERS = (http.HTTPRouteSpecRuleFilter, http.HTTPRouteSpecRuleBackendRefFilter)
