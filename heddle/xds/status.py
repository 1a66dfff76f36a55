"""What each connected proxy has: per type, what was sent, what it acknowledged or refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SyncState(StrEnum):
    SYNCED = "SYNCED"
    STALE = "STALE"  # sent, not yet acknowledged
    NACK = "NACK"  # refused; the proxy keeps its last good config
    NOT_SENT = "NOT SENT"


@dataclass
class TypeStatus:
    sent_version: str = ""
    sent_nonce: str = ""
    acked_version: str = ""
    nack_message: str = ""
    nacked_version: str = ""

    @property
    def state(self) -> SyncState:
        if not self.sent_version:
            return SyncState.NOT_SENT
        if self.nack_message and self.nacked_version == self.sent_version:
            return SyncState.NACK
        if self.acked_version == self.sent_version:
            return SyncState.SYNCED
        return SyncState.STALE


@dataclass
class ProxyStatus:
    """One ADS stream's state. A node id may have several streams at once (a proxy that
    reconnects before its old stream is noticed gone, or a second client naming it)."""

    proxy_id: str
    protocol: str  # "sotw" or "delta"
    connection_id: str = ""  # Istio's `NODE_ID-N`: unique per stream
    identity: str = ""  # the SPIFFE id its client certificate proved; "" over plaintext
    peer: str = ""  # where the stream came from
    connected: bool = True
    types: dict[str, TypeStatus] = field(default_factory=dict)
    # Per type: how many resources the proxy's configuration has, and their encoded bytes.
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def of(self, type_url: str) -> TypeStatus:
        return self.types.setdefault(type_url, TypeStatus())

    def to_json(self) -> dict[str, object]:
        return {
            "proxy": self.proxy_id,
            "connection": self.connection_id,
            "identity": self.identity,
            "peer": self.peer,
            "protocol": self.protocol,
            "connected": self.connected,
            "types": {
                type_url.rsplit(".", 1)[-1]: {
                    "state": str(t.state),
                    "sent": t.sent_version,
                    "acked": t.acked_version,
                    "nack": t.nack_message,
                }
                for type_url, t in sorted(self.types.items())
            },
            "config": {
                type_url.rsplit(".", 1)[-1]: {"resources": count, "bytes": size}
                for type_url, (count, size) in sorted(self.sizes.items())
            },
        }
