"""PeerAuthentication's mode for a workload port, with Istio's precedence."""

from __future__ import annotations

import pytest

from heddle.api.loader import load_text
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.mtls import peer_authentication_mode

PROXY = Proxy(ProxyType.SIDECAR, "reviews-1", "shop", "127.0.20.1", "127.255.20.1",
              (("app", "reviews"),), "reviews")


def policy(name: str, namespace: str, mode: str, selector: bool = False,
           port_mode: str = "") -> str:
    text = (f"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
            f"  mtls: {{mode: {mode}}}\n")
    if selector:
        text += "  selector: {matchLabels: {app: reviews}}\n"
    if port_mode:
        text += f"  portLevelMtls: {{'9080': {{mode: {port_mode}}}}}\n"
    return text


def mode(*policies: str, port: int = 9080) -> str:
    result = load_text("---\n".join(policies), "pa.yaml")
    assert result.errors == [], result.errors
    return peer_authentication_mode(MeshSnapshot.build(1, result.resources), PROXY, port)


def test_permissive_when_nothing_is_set() -> None:
    assert mode() == "PERMISSIVE"


@pytest.mark.parametrize(("policies", "expected"), [
    ([policy("mesh", "istio-system", "STRICT")], "STRICT"),
    ([policy("mesh", "istio-system", "STRICT"), policy("ns", "shop", "DISABLE")], "DISABLE"),
    ([policy("mesh", "istio-system", "STRICT"), policy("ns", "shop", "UNSET")], "STRICT"),
    ([policy("ns", "shop", "STRICT"), policy("w", "shop", "PERMISSIVE", selector=True)],
     "PERMISSIVE"),
    ([policy("ns", "shop", "STRICT"), policy("w", "shop", "UNSET", selector=True)], "STRICT"),
    ([policy("ns", "other", "STRICT")], "PERMISSIVE"),  # another namespace's policy
    ([policy("w", "shop", "STRICT", selector=True, port_mode="DISABLE")], "DISABLE"),
])
def test_the_most_specific_level_that_sets_a_mode_wins(policies: list[str],
                                                       expected: str) -> None:
    assert mode(*policies) == expected


def test_port_level_mode_applies_only_to_its_port() -> None:
    workload = policy("w", "shop", "STRICT", selector=True, port_mode="DISABLE")
    assert mode(workload, port=9080) == "DISABLE"
    assert mode(workload, port=15090) == "STRICT"
