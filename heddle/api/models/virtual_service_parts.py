"""Names for the parts of a VirtualService spec that translators pass around.

The generated models have one class per place a part is written (a destination of an http
route, of a tcp route, of a mirror...), all of one shape; each union here names a part
wherever it was written, so one function can read them all.
"""

from __future__ import annotations

from typing import TypeAlias

from heddle.api.models._generated import networking_virtualservice as vs

HTTPRoute: TypeAlias = vs.VirtualServiceSpecHttpItem
HTTPMatch: TypeAlias = vs.VirtualServiceSpecHttpItemMatchItem
HTTPRetry: TypeAlias = vs.VirtualServiceSpecHttpItemRetries
HTTPRedirect: TypeAlias = vs.VirtualServiceSpecHttpItemRedirect
HTTPDirectResponse: TypeAlias = vs.VirtualServiceSpecHttpItemDirectResponse
HTTPRewrite: TypeAlias = vs.VirtualServiceSpecHttpItemRewrite
HTTPFault: TypeAlias = vs.VirtualServiceSpecHttpItemFault
CorsPolicy: TypeAlias = vs.VirtualServiceSpecHttpItemCorsPolicy
TLSRoute: TypeAlias = vs.VirtualServiceSpecTl
TCPRoute: TypeAlias = vs.VirtualServiceSpecTcpItem
TCPMatch: TypeAlias = vs.VirtualServiceSpecTcpItemMatchItem

# exact / prefix / regex, on the uri, a header, a query parameter...
StringMatch: TypeAlias = (
    vs.VirtualServiceSpecHttpItemMatchItemUri
    | vs.VirtualServiceSpecHttpItemMatchItemScheme
    | vs.VirtualServiceSpecHttpItemMatchItemMethod
    | vs.VirtualServiceSpecHttpItemMatchItemAuthority
    | vs.VirtualServiceSpecHttpItemMatchItemHeaders
    | vs.VirtualServiceSpecHttpItemMatchItemWithoutHeaders
    | vs.VirtualServiceSpecHttpItemMatchItemQueryParams
)
# A match of any rule kind: who sends (sourceLabels, sourceNamespace, gateways) and the port.
SourceMatch: TypeAlias = (
    HTTPMatch | vs.VirtualServiceSpecTlMatchItem | vs.VirtualServiceSpecTcpItemMatchItem
)
# host, port, subset: where a route or a mirror sends traffic.
Destination: TypeAlias = (
    vs.VirtualServiceSpecHttpItemRouteItemDestination
    | vs.VirtualServiceSpecTlRouteItemDestination
    | vs.VirtualServiceSpecTcpItemRouteItemDestination
    | vs.VirtualServiceSpecHttpItemMirror
    | vs.VirtualServiceSpecHttpItemMirror1Destination
)
# A destination and its weight, of an http, tls or tcp rule.
RouteDestination: TypeAlias = (
    vs.VirtualServiceSpecHttpItemRouteItem
    | vs.VirtualServiceSpecTlRouteItem
    | vs.VirtualServiceSpecTcpItemRouteItem
)
StreamRoute: TypeAlias = TLSRoute | TCPRoute
# request / response header changes, of a rule or of one of its destinations.
Headers: TypeAlias = (
    vs.VirtualServiceSpecHttpItemHeaders | vs.VirtualServiceSpecHttpItemRouteItemHeaders
)
HeaderOperations: TypeAlias = (
    vs.VirtualServiceSpecHttpItemHeadersRequest
    | vs.VirtualServiceSpecHttpItemHeadersResponse
    | vs.VirtualServiceSpecHttpItemRouteItemHeadersRequest
    | vs.VirtualServiceSpecHttpItemRouteItemHeadersResponse
)
