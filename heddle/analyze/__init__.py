"""Analyzers with Istio's IST codes over the mesh snapshot: `heddle analyze`."""
