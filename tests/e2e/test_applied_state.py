"""`heddle apply` and `heddle delete` on a running mesh never edit a file the user wrote: the
changes live in the mesh's state (under HEDDLE_HOME), layered over the watched directory,
the mesh behaves as that state says, and it survives `down`/`up`. `heddle get` says where
each resource comes from, a conflict with the directory is a warning naming both, deleting
what is not there is an error, and a kind Heddle does not use is kept and said to be."""

from __future__ import annotations

import subprocess
from pathlib import Path

from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, port_args, processes_of, running_mesh

ALL_TO_V2 = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: backend
spec:
  hosts: [backend.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: backend.default.svc.cluster.local, subset: v2}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def tracked(repo: Path) -> None:
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "the mesh")


def instances(mesh: LocalMesh, count: int = 10) -> set[str]:
    """Which backend instances answer `count` requests from the client."""
    found = set()
    for _ in range(count):
        try:
            status, body = mesh.get("http://frontend:8080/")
        except OSError as err:
            found.add(f"failed: {err}")
            continue
        backend = body.get("backend")
        found.add(str(backend.get("instance")) if status == 200 and isinstance(
            backend, dict) else f"status {status}")
    return found


def test_apply_and_delete_leave_the_files_alone_and_the_mesh_follows_across_restarts(
        tmp_path: Path) -> None:
    changes = tmp_path / "changes"
    changes.mkdir()
    (changes / "all-to-v2.yaml").write_text(ALL_TO_V2)
    deployment = changes / "deployment.yaml"
    deployment.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
                          "spec: {}\n")
    with running_mesh(tmp_path) as mesh:
        tracked(mesh.config_dir)
        mesh_yaml = mesh.config_dir / "mesh.yaml"
        text = mesh_yaml.read_text()
        vs_line = text[:text.index("kind: VirtualService")].count("\n")  # its apiVersion line
        frontend = changes / "frontend.yaml"
        frontend.write_text(next(d for d in text.split("---")
                                 if "name: frontend\nspec:\n  hosts" in d).strip() + "\n")

        out = mesh.heddle("apply", "-f", str(changes / "all-to-v2.yaml"))
        where = f"{mesh_yaml}:{vs_line}:1"
        assert out.stdout == (f"VirtualService.networking.istio.io default/backend configured "
                              f"(overrides {where})\n")
        assert out.stderr.startswith(f"{changes / 'all-to-v2.yaml'}:1:1: warning: "
                                     "VirtualService default/backend: the applied version "
                                     f"overrides its definition at {where}")
        wait_for(lambda: instances(mesh) == {"backend-2"}, 20, "every request to v2")
        assert git(mesh.config_dir, "status", "--porcelain") == ""

        listed = mesh.heddle("get", "vs").stdout
        assert f"applied (from {changes / 'all-to-v2.yaml'}:1)" in listed
        got = mesh.heddle("get", "serviceentry", "frontend", "-o", "yaml").stdout
        assert f"heddle.dev/source: {mesh_yaml}:" in got

        out = mesh.heddle("delete", "-f", str(frontend))
        assert out.stdout == "ServiceEntry.networking.istio.io default/frontend deleted\n"
        wait_for(lambda: instances(mesh, 1) == {"status 503"}, 20, "frontend gone")
        out = mesh.heddle("delete", "-f", str(frontend), check=False)
        assert out.returncode == 1 and "default/frontend: not found in the mesh" in out.stderr
        out = mesh.heddle("apply", "-f", str(deployment))
        assert out.stdout == "Deployment.apps web created, kept but not used by Heddle\n"
        assert git(mesh.config_dir, "status", "--porcelain") == ""

        mesh.heddle("down")
        assert processes_of(mesh.home) == []
        out = mesh.heddle("up", str(mesh.config_dir), "--detach", *port_args())
        assert "over it: 2 resource(s) `heddle apply` added or changed and 1 `heddle " \
               "delete` took away" in out.stdout
        assert instances(mesh, 1) == {"status 503"}  # still deleted

        out = mesh.heddle("apply", "-f", str(frontend))
        assert "default/frontend configured (back to its definition at " \
               f"{mesh_yaml}:" in out.stdout
        wait_for(lambda: instances(mesh) == {"backend-2"}, 20, "frontend back, still all v2")
        assert git(mesh.config_dir, "status", "--porcelain") == ""
