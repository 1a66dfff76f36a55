"""The xDS server: ADS over gRPC, state-of-the-world and delta, with push status."""
