"""Istio and Gateway API resources: schemas, typed models, loading and validation."""
