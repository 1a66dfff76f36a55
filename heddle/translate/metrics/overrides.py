"""The seam for Istio Telemetry `metrics.overrides`: which standard metrics are off, and
which of their labels are replaced or removed. The Telemetry API model resolves a workload's
overrides (mesh, namespace, workload precedence) elsewhere; translation only reads this."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ALL_METRICS = "ALL_METRICS"  # Istio's MetricSelector.IstioMetric value for every metric


class TagOperation(StrEnum):
    UPSERT = "UPSERT"
    REMOVE = "REMOVE"


@dataclass(frozen=True)
class TagOverride:
    """One label of one metric: UPSERT sets it to `value`, an Envoy formatter string (a
    Telemetry CEL expression `e` arrives as `%CEL(e)%`); REMOVE drops it."""

    operation: TagOperation
    value: str = ""


@dataclass(frozen=True)
class MetricOverride:
    """What Telemetry says of one metric (Istio's name, e.g. `istio_requests_total`, or
    ALL_METRICS), for one side (`reporter` "source", "destination", or "" for both)."""

    metric: str
    reporter: str = ""
    disabled: bool = False
    tags: tuple[tuple[str, TagOverride], ...] = ()


@dataclass(frozen=True)
class MetricOverrides:
    """In the order Telemetry lists them: a later override of the same label wins."""

    overrides: tuple[MetricOverride, ...] = ()

    def _applying(self, metric: str, reporter: str) -> list[MetricOverride]:
        return [o for o in self.overrides if o.metric in (metric, ALL_METRICS)
                and o.reporter in ("", reporter)]

    def disabled(self, metric: str, reporter: str) -> bool:
        found = [o.disabled for o in self._applying(metric, reporter)]
        return bool(found) and found[-1]

    def labels(self, metric: str, reporter: str,
               labels: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        """`labels` (name, formatter) with the overrides applied: new labels go last."""
        merged = dict(labels)
        for override in self._applying(metric, reporter):
            for name, tag in override.tags:
                if tag.operation is TagOperation.REMOVE:
                    merged.pop(name, None)
                else:
                    merged[name] = tag.value
        return tuple(merged.items())


NO_OVERRIDES = MetricOverrides()
