"""A node's claims against the identity its certificate proved (istiod's
checkConnectionIdentity and auto-registration checks), without sockets."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2

from heddle.api.loader import load_text
from heddle.ca.identity import Identity
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.xds.authorize import NotAuthorized, authorize
from heddle.xds.proxies import proxy_from_node

ENTRY = """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: frontend, namespace: shop}
spec: {address: 127.0.30.2, serviceAccount: frontend}
"""
SNAPSHOT = MeshSnapshot.build(1, load_text(ENTRY, "entry.yaml").resources)
NODE_ID = Proxy(ProxyType.SIDECAR, "frontend", "shop", "127.0.30.2", "127.128.30.2").id


def node(**metadata: str) -> base_pb2.Node:
    claimed = base_pb2.Node(id=NODE_ID)
    claimed.metadata.update(metadata)
    return claimed


def check(claimed: base_pb2.Node, identity: Identity | None) -> Proxy:
    return authorize(proxy_from_node(claimed, SNAPSHOT), claimed, identity, SNAPSHOT)


def test_a_node_that_names_no_account_takes_the_certificates() -> None:
    assert check(node(), Identity("shop", "frontend")).service_account == "frontend"


@pytest.mark.parametrize(("claimed", "identity", "why"), [
    (node(SERVICE_ACCOUNT="frontend"), Identity("other", "frontend"), "names namespace shop"),
    (node(NAMESPACE="other"), Identity("shop", "frontend"), "names namespace other"),
    (node(SERVICE_ACCOUNT="admin"), Identity("shop", "frontend"), "service account admin"),
    (node(), Identity("shop", "cart"), "WorkloadEntry shop/frontend runs as service account"),
])
def test_claims_the_certificate_does_not_grant_are_refused(
        claimed: base_pb2.Node, identity: Identity, why: str) -> None:
    with pytest.raises(NotAuthorized, match=why):
        check(claimed, identity)


def test_without_an_identity_config_is_served_but_a_group_is_never_joined() -> None:
    assert check(node(SERVICE_ACCOUNT="frontend"), None).service_account == "frontend"
    with pytest.raises(NotAuthorized, match="needs a verified identity"):
        check(node(WORKLOAD_GROUP="pool"), None)


def test_a_node_id_with_an_empty_namespace_is_refused() -> None:
    claimed = base_pb2.Node(id="sidecar~127.0.30.2~frontend.~shop.svc.cluster.local")
    with pytest.raises(NotAuthorized, match="namespace"):
        authorize(proxy_from_node(claimed, SNAPSHOT), claimed, Identity("shop", "frontend"),
                  SNAPSHOT)


@pytest.mark.parametrize("namespace, account", [("shop/x", "a"), ("shop", "x/ns/bank/sa/a"),
                                                ("", "a"), ("shop", "")])
def test_an_identity_cannot_spell_another_identitys_path(namespace: str, account: str) -> None:
    with pytest.raises(ValueError, match="without '/'"):
        Identity(namespace, account)
