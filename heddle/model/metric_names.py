"""Names the translation and the agent share for Istio's standard metrics: where Envoy
keeps them, how its Prometheus output spells them, and Istio's histogram buckets.

Envoy names a stat of the stats access logger `STAT_PREFIX.NAME` and renders it in
Prometheus text as `envoy_STAT_PREFIX_NAME` (only Istio's own proxy build registers a
namespace Envoy would print bare); the agent's merged metrics endpoint (15020) prints
`ENVOY_PREFIX...` as `istio_...`, so every series there has Istio's exact name.
"""

STAT_PREFIX = "istio"
ENVOY_PREFIX = "envoy_istio_"

# Istio leaves its histograms on Envoy's default buckets (ms for durations, bytes for
# sizes); written out so that they stay Istio's whatever Envoy's default becomes.
ISTIO_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
                 60000, 300000, 600000, 1800000, 3600000)
