"""Services and workloads: what exists in the mesh and where it runs."""
