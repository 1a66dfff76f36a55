"""Join tokens: how an agent proves which namespace and service account it runs as.

A token is a JWT (HS256) signed with a key only the control plane holds, bound to one
namespace and service account; the CA signs certificates for that identity and no other.
"""

from __future__ import annotations

import datetime
import os
import secrets
from pathlib import Path

import jwt

from heddle.ca.authority import Clock, utcnow
from heddle.ca.identity import Identity

AUDIENCE = "heddle-ca"
DEFAULT_TTL = datetime.timedelta(hours=24)


class InvalidToken(Exception):
    pass


class TokenIssuer:
    def __init__(self, key: bytes, trust_domain: str = "cluster.local",
                 clock: Clock = utcnow) -> None:
        self._key = key
        self.trust_domain = trust_domain
        self.clock = clock

    @classmethod
    def load_or_create(cls, directory: Path, trust_domain: str = "cluster.local",
                       ) -> TokenIssuer:
        path = directory / "token-key"
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        return cls(path.read_bytes(), trust_domain)

    def create(self, namespace: str, service_account: str,
               ttl: datetime.timedelta = DEFAULT_TTL) -> str:
        now = self.clock()
        claims = {
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "ns": namespace,
            "sa": service_account,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + ttl,
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str) -> Identity:
        """The identity a token is bound to; InvalidToken if forged, expired or malformed."""
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"], audience=AUDIENCE,
                                options={"require": ["exp", "ns", "sa"], "verify_iat": False},
                                leeway=0)
        except jwt.PyJWTError as err:
            raise InvalidToken(str(err)) from err
        now = self.clock().timestamp()
        if claims["exp"] <= now:
            raise InvalidToken("the token has expired")
        return Identity(str(claims["ns"]), str(claims["sa"]), self.trust_domain)
