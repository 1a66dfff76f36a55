"""Locality-aware load balancing, as Istio applies it to one client's endpoints.

Localities are `region/zone/subzone` (a WorkloadEntry's `locality`). With a DestinationRule's
`localityLbSetting.distribute` entry for the client's locality, each group of endpoints
gets the share of traffic the entry gives its locality. Otherwise, when the cluster has
outlier detection (without it Envoy could never see a locality fail), endpoints get Envoy
priorities by how close they are to the client: same subzone 0, same zone 1, same region 2,
a `failover` target region 3, anywhere else 4 (compacted, as Envoy wants no gaps).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

from heddle.api.models.destination_rule_parts import LocalityLbSetting


def parse_locality(text: str) -> base_pb2.Locality:
    region, zone, sub_zone = ([*text.split("/"), "", ""])[:3]
    return base_pb2.Locality(region=region, zone=zone, sub_zone=sub_zone)


def _matches(locality: base_pb2.Locality, pattern: str) -> bool:
    """`region/zone/subzone` patterns, each part exact or `*` (a trailing `*` matches the
    rest), as Istio's `from`/`to` keys are written."""
    text = "/".join([locality.region, locality.zone, locality.sub_zone])
    parts = pattern.split("/")
    if parts[-1] == "*":
        return fnmatch.fnmatchcase(text, pattern) or fnmatch.fnmatchcase(text, pattern + "/*")
    return fnmatch.fnmatchcase(text, pattern + "/*" * (3 - len(parts)))


def _distribution(client: base_pb2.Locality, setting: LocalityLbSetting | None,
                  ) -> Mapping[str, int] | None:
    """The `to` shares of the first `distribute` entry whose `from` is the client's."""
    entries = setting.distribute if setting is not None else None
    found = next((r for r in entries or [] if _matches(client, r.from_ or "")), None)
    return None if found is None else found.to or {}


def _enabled(setting: LocalityLbSetting | None) -> bool:
    return setting is None or setting.enabled is not False


def uses_locality_weights(client_locality: str, setting: LocalityLbSetting | None) -> bool:
    """Whether a `distribute` entry applies to this client (its cluster must then enable
    locality-weighted load balancing)."""
    if not client_locality or not _enabled(setting):
        return False
    return _distribution(parse_locality(client_locality), setting) is not None


def _distribute(assignment: endpoint_pb2.ClusterLoadAssignment, shares: Mapping[str, int],
                ) -> None:
    """Each locality takes the share of the first `to` pattern that matches it, split among
    that pattern's localities by their endpoints' weights (as Istio); localities no pattern
    names get no traffic."""
    groups = list(assignment.endpoints)
    size = [sum(e.load_balancing_weight.value or 1 for e in g.lb_endpoints) for g in groups]
    claimed: dict[int, str] = {}
    for i, group in enumerate(groups):
        pattern = next((p for p in shares if _matches(group.locality, p)), None)
        if pattern is not None:
            claimed[i] = pattern
    kept = []
    for i, group in enumerate(groups):
        if i not in claimed:
            continue
        total = sum(size[j] for j, p in claimed.items() if p == claimed[i])
        weight = shares[claimed[i]] * size[i] / total
        if weight <= 0:
            continue
        copy = endpoint_components_pb2.LocalityLbEndpoints()
        copy.CopyFrom(group)
        copy.load_balancing_weight.value = max(1, round(weight))
        kept.append(copy)
    del assignment.endpoints[:]
    assignment.endpoints.extend(kept)


def _priority(group: base_pb2.Locality, client: base_pb2.Locality, failover_to: set[str],
              ) -> int:
    if group.region != client.region:
        return 3 if group.region in failover_to else 4
    if group.zone != client.zone:
        return 2
    return 0 if group.sub_zone == client.sub_zone else 1


def _failover(assignment: endpoint_pb2.ClusterLoadAssignment, client: base_pb2.Locality,
              setting: LocalityLbSetting | None) -> None:
    failover = setting.failover if setting is not None else None
    first = next((f for f in failover or [] if f.from_ == client.region), None)
    targets = {str(first.to)} if first else set()
    raw = [_priority(group.locality, client, targets) for group in assignment.endpoints]
    ranks = {p: i for i, p in enumerate(sorted(set(raw)))}
    for group, priority in zip(assignment.endpoints, raw, strict=True):
        group.priority = ranks[priority]


def apply_locality(assignment: endpoint_pb2.ClusterLoadAssignment, client_locality: str,
                   setting: LocalityLbSetting | None, outlier_detection: bool) -> None:
    """Weights (distribute) or priorities (failover, only with outlier detection) for the
    client's locality; Istio's locality load balancing is on unless `enabled: false`, with
    or without a localityLbSetting."""
    if not client_locality or not _enabled(setting):
        return
    client = parse_locality(client_locality)
    if setting is not None and setting.distribute:  # Istio: distribute or failover, not both
        shares = _distribution(client, setting)
        if shares is not None:
            _distribute(assignment, shares)
    elif outlier_detection:
        _failover(assignment, client, setting)


def locality_groups(groups: Mapping[tuple[str, int], list[endpoint_components_pb2.LbEndpoint]],
                    ) -> list[endpoint_components_pb2.LocalityLbEndpoints]:
    """One LocalityLbEndpoints per (locality, priority rank), in a stable order; ranks are
    compacted into Envoy priorities 0, 1, 2... (all 0 unless failoverPriority ranked them)."""
    priorities = {rank: i for i, rank in enumerate(sorted({rank for _, rank in groups}))}
    found = []
    for (name, rank), endpoints in sorted(groups.items()):
        group = endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=endpoints,
                                                            priority=priorities[rank])
        if name:
            group.locality.CopyFrom(parse_locality(name))
        found.append(group)
    return found


# Labels Istio reads from the locality rather than from the workload's labels.
_TOPOLOGY = {"topology.kubernetes.io/region": 0, "topology.kubernetes.io/zone": 1,
             "topology.istio.io/subzone": 2}


def _label(key: str, labels: Mapping[str, str], locality: str) -> str:
    if key in _TOPOLOGY:
        return ([*locality.split("/"), "", ""])[_TOPOLOGY[key]]
    return labels.get(key, "")


def label_priority(keys: list[str], client_labels: Mapping[str, str], client_locality: str,
                   labels: Mapping[str, str], locality: str) -> int:
    """failoverPriority: 0 for an endpoint that shares every listed label with the client,
    1 when all but the last match, and so on (labels compared in order)."""
    matched = 0
    for key in keys:
        if _label(key, labels, locality) != _label(key, client_labels, client_locality):
            break
        matched += 1
    return len(keys) - matched
