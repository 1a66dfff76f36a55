"""SPIFFE identities as Istio writes them: spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TRUST_DOMAIN = "cluster.local"
# The DNS names on the control plane's serving certificate; agents and their Envoys verify
# the first (and send it as SNI), Istio's name is there for clients that expect istiod.
CONTROL_PLANE_NAMES = ("heddle-control-plane", "istiod.istio-system.svc")


@dataclass(frozen=True, order=True)
class Identity:
    namespace: str
    service_account: str
    trust_domain: str = DEFAULT_TRUST_DOMAIN

    def __post_init__(self) -> None:
        # A "/" would let one identity spell another's path (ns/a/sa/x/ns/b/sa/y) and pass
        # a policy written for the other; no Kubernetes name can hold one.
        for what, value in (("namespace", self.namespace),
                            ("service account", self.service_account),
                            ("trust domain", self.trust_domain)):
            if not value or "/" in value:
                raise ValueError(f"{what} {value!r} must be a non-empty name without '/'")

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return self.spiffe_id

    @classmethod
    def parse(cls, uri: str) -> Identity:
        prefix = "spiffe://"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri!r} is not a SPIFFE id")
        trust_domain, _, path = uri[len(prefix):].partition("/")
        parts = path.split("/")
        if len(parts) != 4 or parts[0] != "ns" or parts[2] != "sa" or not all(parts):
            raise ValueError(f"{uri!r} is not spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT")
        return cls(parts[1], parts[3], trust_domain)
