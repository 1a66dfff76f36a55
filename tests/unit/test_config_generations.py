"""The store keeps Gateway API resources' metadata.generation as the API server does, so
their status can say which spec it is about (observedGeneration)."""

from __future__ import annotations

from typing import Any

from heddle.api.loader import load_text
from heddle.api.resource import ResourceKey
from heddle.config.store import ConfigStore

GROUP = "gateway.networking.k8s.io"
KEY = ResourceKey(GROUP, "HTTPRoute", "infra", "bump")
ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bump, namespace: infra, labels: {tier: LABEL}, generation: 7}
spec:
  parentRefs: [{name: same-namespace}]
  rules: [{backendRefs: [{name: BACKEND, port: 8080}]}]
"""


def _route(backend: str = "infra-backend-v1", label: str = "a") -> str:
    return ROUTE.replace("BACKEND", backend).replace("LABEL", label)


def _generation(store: ConfigStore) -> Any:
    found = store.find(KEY)
    assert found is not None
    return found.body["metadata"]["generation"]


def test_a_new_resource_is_generation_1_whatever_its_file_says() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(_route(), "a.yaml"))
    assert _generation(store) == 1


def test_a_spec_change_bumps_the_generation_and_a_metadata_change_does_not() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(_route(), "a.yaml"))
    store.put("a.yaml", load_text(_route(label="b"), "a.yaml"))
    assert _generation(store) == 1
    store.put("a.yaml", load_text(_route("infra-backend-v2", "b"), "a.yaml"))
    assert _generation(store) == 2
    store.put("b.yaml", load_text("", "b.yaml"))  # another file's change keeps it
    assert _generation(store) == 2


def test_a_recreated_resource_starts_again_at_1() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(_route(), "a.yaml"))
    store.put("a.yaml", load_text(_route("infra-backend-v2"), "a.yaml"))
    store.remove("a.yaml")
    store.put("a.yaml", load_text(_route("infra-backend-v2"), "a.yaml"))
    assert _generation(store) == 1


def test_other_groups_are_kept_as_written() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: r, namespace: shop}\nspec: {host: r}\n", "a.yaml"))
    found = store.find(ResourceKey("networking.istio.io", "DestinationRule", "shop", "r"))
    assert found is not None and "generation" not in found.body["metadata"]
