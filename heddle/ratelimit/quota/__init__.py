"""Quota leasing: Envoy's rate-limit quota service (RLQS,
`envoy.service.rate_limit_quota.v3.RateLimitQuotaService`) beside the RLS.

A proxy asks the RLS about every request; a proxy that leases quota asks nothing per request:
it enforces a token bucket the service assigned it, and reports its buckets' usage every
interval. The service splits each bucket's global limit among the proxies that report it,
in proportion to the demand each reported (with a floor, so an idle proxy keeps a little),
and answers every report with the proxy's new share. Its work grows with buckets x proxies
/ reporting interval, not with requests.

- `limits`: which limit a bucket falls under (the RLS's own domain config, rule by rule).
- `policy`: the split (shares of demand) and the token bucket each share becomes.
- `leases`: who holds a lease on each bucket and their demand, in memory or in Redis (shared
  by every replica of the service).
- `service`: the gRPC servicer (grpc.aio).
"""
