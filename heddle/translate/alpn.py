"""How a client sidecar tells the server's sidecar that an mTLS connection carries HTTP.

Inside mTLS the server cannot inspect the bytes, so for a port of protocol AUTO it is told by
ALPN, as in Istio: the client's outbound proxy offers `istio-http/1.1` on the connection an
HTTP request goes out on (Envoy's `envoy.network.application_protocols` filter state, set by
a `set_filter_state` filter), and the server's inbound listener sends connections offering
any of `ISTIO_HTTP_ALPNS` to its HTTP chain, the rest to its TCP chain.

The filter is in the outbound proxy's chain, disabled: only routes that carry its
configuration run it. HTTP routes to AUTO ports do; CONNECT tunnels (streams) and routes
to a destination that originates TLS of its own (a DestinationRule's SIMPLE or MUTUAL,
whose server expects the ALPN configured there) do not.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.common.set_filter_state.v3 import value_pb2
from envoy.extensions.filters.http.set_filter_state.v3 import set_filter_state_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

ALPN_FILTER = "heddle.alpn"
# Istio's ALPN for HTTP over mTLS between sidecars (HTTP/1.0, HTTP/1.1, HTTP/2).
ISTIO_HTTP_ALPNS = ("istio-http/1.0", "istio-http/1.1", "istio-h2")
HTTP_OVER_MTLS = "istio-http/1.1"
_APPLICATION_PROTOCOLS = "envoy.network.application_protocols"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def alpn_filter_config() -> any_pb2.Any:
    """The filter in the connection manager: it sets nothing unless a route says so."""
    return _pack(set_filter_state_pb2.Config())


def enable_alpn(route: rc.Route) -> None:
    """Run the ALPN filter on this route: offer `istio-http/1.1` upstream. The server's
    HTTP connection manager detects the HTTP version itself; the name only says "HTTP"
    (Istio says `istio-h2` for an HTTP/2 client)."""
    config = set_filter_state_pb2.Config(on_request_headers=[value_pb2.FilterStateValue(
        object_key=_APPLICATION_PROTOCOLS,
        format_string={"text_format_source": {"inline_string": HTTP_OVER_MTLS}})])
    route.typed_per_filter_config[ALPN_FILTER].CopyFrom(
        _pack(rc.FilterConfig(config=_pack(config))))
