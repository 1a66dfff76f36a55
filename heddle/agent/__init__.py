"""The per-workload agent: Envoy's bootstrap and supervision, and the application's start."""
