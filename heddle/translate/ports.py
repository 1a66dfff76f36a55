"""Well-known proxy ports: they live in `heddle.model.ports` (the agent needs them without
translation); re-exported here for the translators."""

from heddle.model.ports import (
    ADMIN,
    HEALTH,
    INBOUND,
    OUTBOUND,
    XDS_PLAINTEXT,
    XDS_TLS,
)

__all__ = ["ADMIN", "HEALTH", "INBOUND", "OUTBOUND", "XDS_PLAINTEXT", "XDS_TLS"]
