"""What `heddle describe` and `heddle explain` are about: a workload or a service of the
snapshot, named as a user names it (`reviews-v1`, `reviews-v1.default`, `reviews`,
`reviews.default.svc.cluster.local`)."""

from __future__ import annotations

import difflib

from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Service, Workload, resolve_host


class NotFound(ValueError):
    """A name that is neither a workload nor a service; the message says what there is."""


def _split(name: str, namespace: str) -> tuple[str, str]:
    base, _, ns = name.partition(".")
    return (base, ns) if ns and "." not in ns else (name, namespace)


def find_workload(snapshot: MeshSnapshot, name: str, namespace: str = "default",
                  ) -> Workload | None:
    base, ns = _split(name, namespace)
    return snapshot.registry.workload(ns, base)


def find_service(snapshot: MeshSnapshot, name: str, namespace: str = "default",
                 ) -> Service | None:
    base, ns = _split(name, namespace)
    return (snapshot.registry.service(resolve_host(name, namespace))
            or snapshot.registry.service(resolve_host(base, ns)))


def workload_named(snapshot: MeshSnapshot, name: str, namespace: str = "default") -> Workload:
    found = find_workload(snapshot, name, namespace)
    if found is None:
        known = sorted(w.name for w in snapshot.registry.workloads)
        near = difflib.get_close_matches(name.partition(".")[0], known, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f" (workloads: {', '.join(known)})"
        raise NotFound(f"no workload {name!r} in namespace {namespace!r}{hint}")
    return found


def proxy_of(workload: Workload) -> Proxy:
    """The sidecar proxy the control plane would build for `workload`, connected or not."""
    return Proxy(ProxyType.SIDECAR, workload.name, workload.namespace, workload.address,
                 workload.address, workload.labels, workload.service_account)


def spiffe_of(workload: Workload) -> str:
    return f"spiffe://cluster.local/ns/{workload.namespace}/sa/{workload.service_account}"


def services_of(snapshot: MeshSnapshot, workload: Workload) -> list[Service]:
    """The services whose workloads include `workload`."""
    return [s for s in snapshot.registry.services if s.namespace == workload.namespace
            and workload in snapshot.registry.workloads_of(s)]
