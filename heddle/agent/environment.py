"""The environment an application runs with so that its outbound traffic uses its sidecar.

Kept free of heavy imports: `heddle exec` builds it on every call.
"""

from __future__ import annotations

import os

from heddle.model import ports
from heddle.model.proxy import Proxy


def application_env(proxy: Proxy, base: dict[str, str] | None = None) -> dict[str, str]:
    """HTTP proxy variables point at the sidecar (CONNECT carries TCP and TLS through it)."""
    env = dict(os.environ if base is None else base)
    proxy_url = f"http://{proxy.address}:{ports.OUTBOUND}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        env[name] = proxy_url
    for name in ("no_proxy", "NO_PROXY"):
        env.pop(name, None)
    env.update({
        "HEDDLE_WORKLOAD": proxy.name,
        "HEDDLE_NAMESPACE": proxy.namespace,
        "HEDDLE_POD_IP": proxy.address,
        "HEDDLE_APP_ADDRESS": proxy.app_address,
        "HEDDLE_SERVICE_ACCOUNT": proxy.service_account,
    })
    return env
