"""Why the mesh does what it does to a workload or a request: `heddle describe` (what
applies to a workload or service) and `heddle explain` (why a request failed)."""
