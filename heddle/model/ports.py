"""Well-known proxy ports, as Istio numbers them."""

ADMIN = 15000
OUTBOUND = 15001
INBOUND = 15006
HEALTH = 15021
XDS_PLAINTEXT = 15010
XDS_TLS = 15012
MERGED_METRICS = 15020  # the agent: Envoy's metrics and the application's, merged
