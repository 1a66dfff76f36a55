"""meshConfig.pathNormalization -> an HTTP connection manager's path settings.

Mapped as Istio maps it (pilot/pkg/networking/core/listener_builder.go,
buildHTTPConnectionManager), on every connection manager a proxy has: the normalized path is
what authorization policies and routes match and what the application receives, so a path
like `/public/../private` cannot pass a rule for `/public*` and then reach `/private`.

  NONE                      normalize_path false
  BASE (the default)        normalize_path true (RFC 3986: `.`/`..` segments, unreserved
                            %XX decoded, `\\` -> `/`)
  MERGE_SLASHES             BASE, and `//` -> `/`
  DECODE_AND_MERGE_SLASHES  MERGE_SLASHES, after %2F and %5C are decoded

Escaped slashes are kept unchanged except under DECODE_AND_MERGE_SLASHES.
"""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.model.mesh_config import (
    PATH_DECODE_AND_MERGE_SLASHES,
    PATH_MERGE_SLASHES,
    PATH_NONE,
    MeshConfig,
)

Manager = hcm.HttpConnectionManager


def apply_path_normalization(manager: hcm.HttpConnectionManager, mesh: MeshConfig,
                             ) -> hcm.HttpConnectionManager:
    """Set `manager`'s normalize_path, merge_slashes and path_with_escaped_slashes_action
    for the mesh's mode; returns `manager`."""
    mode = mesh.path_normalization
    manager.normalize_path.value = mode != PATH_NONE
    manager.merge_slashes = mode in (PATH_MERGE_SLASHES, PATH_DECODE_AND_MERGE_SLASHES)
    manager.path_with_escaped_slashes_action = (
        Manager.UNESCAPE_AND_FORWARD if mode == PATH_DECODE_AND_MERGE_SLASHES
        else Manager.KEEP_UNCHANGED)
    return manager
