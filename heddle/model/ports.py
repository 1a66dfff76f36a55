"""Well-known proxy ports, as Istio numbers them."""

ADMIN = 15000
OUTBOUND = 15001
INBOUND = 15006
HEALTH = 15021
XDS_PLAINTEXT = 15010
XDS_TLS = 15012
