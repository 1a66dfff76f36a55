"""Heddle: a service mesh that speaks Istio's configuration language and drives Envoy."""

__version__ = "0.1.0"
