"""The immutable view of the mesh that translation reads."""
