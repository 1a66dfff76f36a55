"""Heddle's global rate-limit service (`heddle ratelimit`): Envoy's RLS over grpc.aio.

It reads envoyproxy/ratelimit's own YAML configuration (a directory of domain files, reloaded
on change), counts fixed windows in memory or in Redis, and reports its decisions as
Prometheus metrics under envoyproxy/ratelimit's names, so existing deployments move over as
they are.
"""
