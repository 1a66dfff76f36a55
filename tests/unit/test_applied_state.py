"""`heddle apply` and `heddle delete` change the mesh's own state, layered over the watched
directory, and never a file the user wrote: an applied resource replaces the directory's
definition (a warning names both), a deletion hides it, applying the directory's definition
again returns to it, deleting what is not there is an error, and all of it survives a
restart."""

from __future__ import annotations

import json
from pathlib import Path

from heddle.api.diagnostics import Severity
from heddle.api.resource import ResourceKey
from heddle.config.applied import AppliedConfig, AppliedSource
from heddle.config.directory import DirectorySource
from heddle.config.store import ConfigStore

GROUP = "networking.istio.io"
VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{name}.example.com]
  http:
  - route:
    - destination: {{host: {host}}}
"""
DIRECTORY = "# the user's file\n" + VS.format(name="reviews", host="v1") + "---\n" + VS.format(
    name="ratings", host="ratings")


def key(name: str) -> ResourceKey:
    return ResourceKey(GROUP, "VirtualService", "default", name)


class Mesh:
    """A store fed by a watched directory and the applied state, as the control plane's."""

    def __init__(self, tmp: Path) -> None:
        self.directory = tmp / "config"
        self.store = ConfigStore()
        self.files = DirectorySource(self.directory, self.store)
        self.applied = AppliedConfig(AppliedSource(tmp / "home" / "applied", self.store))

    @classmethod
    async def start(cls, tmp: Path) -> Mesh:
        mesh = cls(tmp)
        await mesh.files.load()
        await mesh.applied.source.load()
        return mesh

    def host(self, name: str) -> str | None:
        found = self.store.find(key(name))
        return None if found is None else found.body["spec"]["http"][0]["route"][0][
            "destination"]["host"]


async def started(tmp_path: Path) -> Mesh:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "mesh.yaml").write_text(DIRECTORY)
    return await Mesh.start(tmp_path)


def mesh_yaml(tmp_path: Path) -> str:
    return (tmp_path / "config" / "mesh.yaml").read_text()


async def test_applying_a_new_resource_creates_it_in_the_state_only(tmp_path: Path) -> None:
    mesh = await started(tmp_path)
    report = await mesh.applied.apply([("/in/new.yaml", VS.format(name="new", host="x"))])
    assert report.lines == [f"{key('new')} created"] and not report.failed
    assert mesh.host("new") == "x"
    assert sorted(p.name for p in (tmp_path / "config").iterdir()) == ["mesh.yaml"]
    assert mesh_yaml(tmp_path) == DIRECTORY
    state = tmp_path / "home" / "applied" / "resources"
    [saved] = state.iterdir()
    assert saved.read_text().startswith("# applied from /in/new.yaml:1:1 at ")


async def test_applying_over_the_directory_warns_naming_both_and_the_applied_one_wins(
        tmp_path: Path) -> None:
    mesh = await started(tmp_path)
    report = await mesh.applied.apply([("/in/vs.yaml", VS.format(name="reviews", host="v2"))])
    where = f"{tmp_path / 'config' / 'mesh.yaml'}:2:1"
    assert report.lines == [f"{key('reviews')} configured (overrides {where})"]
    [warning] = report.problems
    assert warning.severity is Severity.WARNING
    assert str(warning).startswith(
        "/in/vs.yaml:1:1: warning: VirtualService default/reviews: the applied version "
        f"overrides its definition at {where}; both are kept, the applied one is in force")
    assert mesh.host("reviews") == "v2" and mesh_yaml(tmp_path) == DIRECTORY
    [override] = mesh.store.overrides()
    assert f"overrides its definition at {where}" in str(override)
    # Applying the directory's definition again ends the override.
    back = await mesh.applied.apply([("/in/vs.yaml", VS.format(name="reviews", host="v1"))])
    assert back.lines == [f"{key('reviews')} configured (back to its definition at {where})"]
    assert mesh.host("reviews") == "v1" and mesh.store.overrides() == []
    assert list((tmp_path / "home" / "applied" / "resources").iterdir()) == []


async def test_applying_what_is_in_force_is_unchanged(tmp_path: Path) -> None:
    mesh = await started(tmp_path)
    report = await mesh.applied.apply([("/in/vs.yaml", VS.format(name="ratings",
                                                                 host="ratings"))])
    assert report.lines == [f"{key('ratings')} unchanged"]
    new = VS.format(name="new", host="x")
    await mesh.applied.apply([("/in/new.yaml", new)])
    assert (await mesh.applied.apply([("/in/new.yaml", new)])).lines == [
        f"{key('new')} unchanged"]


async def test_delete_hides_the_directory_definition_and_survives_a_restart(
        tmp_path: Path) -> None:
    mesh = await started(tmp_path)
    report = await mesh.applied.delete([("/in/vs.yaml", VS.format(name="reviews", host="v1"))])
    assert report.lines == [f"{key('reviews')} deleted"] and not report.failed
    assert mesh.host("reviews") is None and mesh.host("ratings") == "ratings"
    assert mesh_yaml(tmp_path) == DIRECTORY
    restarted = await Mesh.start(tmp_path)
    assert restarted.host("reviews") is None and restarted.host("ratings") == "ratings"
    # Applying it again (as the file defines it) brings the directory's definition back.
    await restarted.applied.apply([("/in/vs.yaml", VS.format(name="reviews", host="v1"))])
    assert restarted.host("reviews") == "v1"
    assert json.loads((tmp_path / "home" / "applied" / "deleted.json").read_text()) == {
        "deleted": []}


async def test_deleting_an_applied_override_deletes_the_resource(tmp_path: Path) -> None:
    mesh = await started(tmp_path)
    await mesh.applied.apply([("/in/vs.yaml", VS.format(name="reviews", host="v2"))])
    await mesh.applied.delete([("/in/vs.yaml", VS.format(name="reviews", host="v2"))])
    assert mesh.host("reviews") is None and mesh.store.overrides() == []


async def test_deleting_what_is_not_there_is_an_error(tmp_path: Path) -> None:
    mesh = await started(tmp_path)
    report = await mesh.applied.delete([("/in/x.yaml", VS.format(name="nope", host="x") +
                                         "---\n" + VS.format(name="ratings", host="y"))])
    assert report.failed
    assert [str(p) for p in report.problems] == [
        "error: VirtualService default/nope: not found in the mesh (`heddle get` lists what "
        "the mesh has)"]
    assert report.lines == [f"{key('ratings')} deleted"]  # the others still go, as kubectl's


async def test_a_kind_heddle_does_not_use_is_kept_and_says_so(tmp_path: Path) -> None:
    mesh = await started(tmp_path)
    deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n"
    report = await mesh.applied.apply([("/in/d.yaml", deployment)])
    assert report.lines == ["Deployment.apps web created, kept but not used by Heddle"]
    assert [o.name for o in mesh.store.unmanaged()] == ["web"]


async def test_an_invalid_file_changes_nothing(tmp_path: Path) -> None:
    mesh = await started(tmp_path)
    bad = VS.format(name="new", host="x").replace("hosts:", "hostz:")
    report = await mesh.applied.apply([("/in/new.yaml", VS.format(name="ok", host="x")),
                                       ("/in/bad.yaml", bad)])
    assert report.failed and report.lines == ["nothing was changed; fix the errors above"]
    assert any(str(p).startswith('/in/bad.yaml:5:3: error:') and "hostz" in str(p)
               for p in report.problems)
    assert mesh.host("ok") is None


async def test_get_output_applied_again_is_unchanged(tmp_path: Path) -> None:
    """`heddle get -o yaml` adds a heddle.dev/source annotation; apply drops it."""
    mesh = await started(tmp_path)
    annotated = VS.format(name="ratings", host="ratings").replace(
        "metadata: {name: ratings}",
        "metadata:\n  name: ratings\n  annotations: {heddle.dev/source: 'mesh.yaml:10'}")
    report = await mesh.applied.apply([("/in/got.yaml", annotated)])
    assert report.lines == [f"{key('ratings')} unchanged"]
