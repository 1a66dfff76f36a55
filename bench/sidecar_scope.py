"""What a Sidecar resource saves: one proxy's configuration in a mesh of many namespaces,
with and without a Sidecar whose egress is `./*` (its own namespace only).

    python bench/sidecar_scope.py [--namespaces 50] [--services 20] [--repeat 3]

Prints JSON: clusters, endpoints, routes (virtual hosts) and encoded bytes the proxy gets,
and the time translation takes (for the proxy, then for a replica of it, which shares the
outbound side), for both cases, with the ratios side by side.
"""

from __future__ import annotations

import argparse
import json
import time

from heddle.api.loader import load_text
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.sidecar import CLUSTER, ENDPOINT, ROUTE, ProxyResources, sidecar_resources


def mesh_text(namespaces: int, services: int) -> str:
    """`namespaces` namespaces, each with `services` services of two workloads each, and a
    DestinationRule (one subset) and a VirtualService (a route to it) per service."""
    documents = []
    for n in range(namespaces):
        for s in range(services):
            documents.append(
                f"apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: ns-{n}}}\n"
                f"spec:\n  selector: {{app: svc-{s}}}\n  ports: [{{name: http, port: 8080}}]\n")
            documents.append(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                f"metadata: {{name: svc-{s}, namespace: ns-{n}}}\n"
                f"spec:\n  host: svc-{s}\n  subsets: [{{name: v1, labels: {{app: svc-{s}}}}}]\n")
            documents.append(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                f"metadata: {{name: svc-{s}, namespace: ns-{n}}}\n"
                f"spec:\n  hosts: [svc-{s}]\n"
                f"  http: [{{route: [{{destination: {{host: svc-{s}, subset: v1}}}}]}}]\n")
            for i in range(2):
                documents.append(
                    "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
                    f"metadata: {{name: svc-{s}-{i}, namespace: ns-{n}}}\n"
                    f"spec: {{address: 10.{n}.{s}.{i + 1}, labels: {{app: svc-{s}}}}}\n")
    return "---\n".join(documents)


SIDECAR = """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns-0}
spec:
  egress: [{hosts: ["./*"]}]
"""


def measure(text: str, repeat: int) -> dict[str, float]:
    result = load_text(text, "mesh.yaml")
    assert result.errors == [], result.errors[:3]
    proxy = Proxy(ProxyType.SIDECAR, "svc-0-0", "ns-0", "10.0.0.1", "10.0.0.1",
                  (("app", "svc-0"),), "default")
    replica = Proxy(ProxyType.SIDECAR, "svc-0-1", "ns-0", "10.0.0.2", "10.0.0.2",
                    (("app", "svc-0"),), "default")
    timings, replica_timings = [], []
    resources = ProxyResources()
    for _ in range(repeat):
        fresh = MeshSnapshot.build(1, result.resources)  # nothing memoized yet
        start = time.perf_counter()
        resources = sidecar_resources(fresh, proxy)
        timings.append(time.perf_counter() - start)
        start = time.perf_counter()
        sidecar_resources(fresh, replica)  # same labels and scope: shares the outbound side
        replica_timings.append(time.perf_counter() - start)
    [routes] = resources.of(ROUTE).values()
    return {
        "clusters": len(resources.of(CLUSTER)),
        "endpoints": len(resources.of(ENDPOINT)),
        "virtual_hosts": len(routes.virtual_hosts),  # type: ignore[attr-defined]
        "bytes": sum(len(m.SerializeToString()) for items in resources.by_type.values()
                     for m in items.values()),
        "translate_seconds": min(timings),
        "replica_translate_seconds": min(replica_timings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    text = mesh_text(args.namespaces, args.services)
    everything = measure(text, args.repeat)
    scoped = measure(text + SIDECAR, args.repeat)
    print(json.dumps({
        "namespaces": args.namespaces,
        "services": args.namespaces * args.services,
        "without_sidecar": everything,
        "with_sidecar_own_namespace": scoped,
        "ratio_scoped_to_full": {k: round(scoped[k] / everything[k], 4) for k in everything},
    }, indent=2))


if __name__ == "__main__":
    main()
