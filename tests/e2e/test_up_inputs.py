"""`heddle up` checks what it is given before anything starts: a path that is missing, not
YAML, or an empty directory, an unknown flag or a bad value is one `error:` line naming it
and the fix, with a non-zero exit, no traceback, and nothing left running. One YAML file
is a mesh of its own: `heddle up mesh.yaml` runs what that file declares."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from heddle.testing.waiting import wait_for

from .mesh_fixtures import (
    HEDDLE,
    HELLO_WORKLOADS,
    ROOT,
    mesh_copy,
    processes_of,
    running_mesh,
    status_workloads,
)


def up(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HEDDLE, "up", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HEDDLE_HOME": str(home)})


def assert_refused(out: subprocess.CompletedProcess[str], home: Path, *words: str) -> None:
    assert out.returncode != 0
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    for word in words:
        assert word in lines[0], lines[0]
    assert not (home / "mesh" / "state.json").exists()
    assert processes_of(home) == []


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-mesh"
    assert_refused(up(tmp_path / "home", str(missing), "--detach"), tmp_path / "home",
                   str(missing), "no such file or directory", "examples/hello")


def test_an_empty_directory_has_nothing_to_run(tmp_path: Path) -> None:
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("not configuration\n")
    (tmp_path / "empty" / ".hidden" / "mesh.yaml").write_text("{}\n")
    assert_refused(up(tmp_path / "home", str(tmp_path / "empty"), "--detach"),
                   tmp_path / "home", "has no YAML files", "nothing to run")


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    assert_refused(up(tmp_path / "home", str(ROOT / "README.md"), "--detach"),
                   tmp_path / "home", "README.md is not a YAML file")


@pytest.mark.parametrize("args, words", [
    (["--bogus"], ["heddle up: unrecognized arguments: --bogus", "heddle up --help"]),
    (["--detach", "--xds-port", "many"], ["--xds-port", "invalid int value: 'many'"]),
    (["--xds-port", "70000"], ["--xds-port 70000", "between 1 and 65535"]),
    (["--xds-port", "15014"], ["must all differ"]),
    (["--timeout", "0"], ["--timeout 0", "more than 0"]),
    (["--prometheus", "--prometheus-port", "15014"], ["--prometheus-port", "must all differ"]),
    (["--prometheus", "--prometheus-scrape-interval", "0"],
     ["--prometheus-scrape-interval 0", "more than 0"]),
])
def test_bad_flags_are_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    assert_refused(up(tmp_path / "home", str(ROOT / "examples" / "hello"), *args),
                   tmp_path / "home", *words)


def test_unknown_commands_and_flags_of_other_verbs_are_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HEDDLE_HOME": str(tmp_path / "home")}
    for args, words in ((["stauts"], ["unknown command 'stauts'", "did you mean 'status'"]),
                        (["get", "vs", "--colour"], ["heddle get: unrecognized arguments"]),
                        (["status"], ["no mesh is running in", "heddle up DIR"]),
                        (["down", "--now"], ["heddle down: unrecognized arguments: --now"])):
        out = subprocess.run([HEDDLE, *args], capture_output=True, text=True, timeout=60,
                             env=env)
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert len(out.stderr.splitlines()) == 1, out.stderr
        assert all(word in out.stderr for word in words), out.stderr


def test_invalid_configuration_is_reported_and_nothing_starts(tmp_path: Path) -> None:
    config_dir, _ = mesh_copy(tmp_path)
    (config_dir / "broken.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
        "spec:\n  hosts: [x]\n  http:\n  - route:\n    - destination: {host: x}\n"
        "      weigth: 1\n")
    out = up(tmp_path / "home", str(config_dir), "--detach")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"{config_dir / 'broken.yaml'}:9:7: error:" in out.stderr
    assert out.stderr.splitlines()[-1].startswith(f"error: {config_dir} has 1 error(s)")
    assert processes_of(tmp_path / "home") == []


def test_one_yaml_file_is_a_mesh_of_its_own(tmp_path: Path) -> None:
    """`heddle up DIR/mesh.yaml`: its workloads run (commands from the file's folder), an edit
    to it reaches the proxies, and the other YAML beside it is not part of the mesh."""
    beside = tmp_path / "hello" / "other.yaml"
    with running_mesh(tmp_path, target="mesh.yaml") as mesh:
        beside.write_text(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
            "metadata: {name: beside}\nspec:\n  hosts: [beside.example.com]\n"
            "  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n")
        status = mesh.heddle("status").stdout
        assert f"mesh from {mesh.config_dir / 'mesh.yaml'}" in status
        assert set(status_workloads(status)) == HELLO_WORKLOADS, status
        assert mesh.get("http://frontend:8080/")[0] == 200
        text = (mesh.config_dir / "mesh.yaml").read_text()
        (mesh.config_dir / "mesh.yaml").write_text(
            text + "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
                   "metadata: {name: added}\nspec:\n  hosts: [added.example.com]\n"
                   "  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n")

        def clusters() -> str:
            return mesh.heddle("proxy-config", "clusters", "client", "-o", "json").stdout

        wait_for(lambda: "added.example.com" in clusters(), 20, "the edit in every proxy")
        assert "beside.example.com" not in clusters()
        names = [r["metadata"]["name"] for r in json.loads(
            mesh.heddle("get", "serviceentries", "-o", "json").stdout)["items"]]
        assert "added" in names and "beside" not in names
