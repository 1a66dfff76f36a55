"""Pure translation of (MeshSnapshot, proxy) into Envoy resources."""
