"""Istio's standard metrics, produced by Envoy itself: who the peers are (peer.py), what each
metric is (standard.py), the stats access loggers that count them (loggers.py), the filters
that carry the peers' identities between sidecars (exchange.py), and the seam for Telemetry
`metrics.overrides` (overrides.py)."""
