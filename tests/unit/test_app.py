"""The composition root: one options object, serialized whole, builds the same control
plane wherever it is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from heddle.app import OPTIONS_FILE, ControlPlane, MeshOptions, local_mesh
from heddle.model.proxy import ProxyType


def test_options_survive_a_round_trip_through_json(tmp_path: Path) -> None:
    options = MeshOptions(tmp_path / "mesh", "127.0.0.1:25010", debug_port=25014,
                          debounce_quiet=0.3, ca_dir=tmp_path / "ca", cert_lifetime=60)
    assert MeshOptions.from_json(options.to_json()) == options


def test_an_unknown_option_is_named_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown option.*xds_prot.*known: config_dir"):
        MeshOptions.from_json('{"config_dir": "x", "xds_prot": 1}', "opts.json")


def test_the_supervisor_starts_the_control_plane_with_its_options_file(tmp_path: Path) -> None:
    options = MeshOptions(tmp_path / "mesh", "127.0.0.1:25010", secure_address="127.0.0.1:25012",
                          join_address="127.0.0.1:25013", debounce_max=3.0)
    mesh = local_mesh(options, tmp_path / "home")
    command = mesh.config.control_plane_command
    assert command[-3:] == ("control-plane", "--options-file", str(tmp_path / "home" /
                                                                   OPTIONS_FILE))
    written = MeshOptions.read(Path(command[-1]))
    assert written.debounce_max == 3.0 and written.ca_dir == tmp_path / "home" / "ca"
    assert (mesh.config.xds_port, mesh.config.ca_port, mesh.config.join_port) == (
        25010, 25012, 25013)


def test_the_control_plane_has_a_generator_for_every_proxy_type(tmp_path: Path) -> None:
    plane = ControlPlane(MeshOptions(tmp_path))
    assert set(plane.generators) == set(ProxyType)
    assert plane.certificates is None  # no CA directory: no CA


async def test_the_apply_api_answers_only_the_meshs_token(tmp_path: Path) -> None:
    import aiohttp
    from aiohttp import web

    from heddle.app import add_apply_api
    from heddle.config.applied import AppliedConfig, AppliedSource
    from heddle.config.store import ConfigStore

    app = web.Application()
    add_apply_api(app, AppliedConfig(AppliedSource(tmp_path / "applied", ConfigStore())),
                  "s3cret")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    doc = ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\n"
           "spec: {hosts: [a.example.com], ports: [{number: 80, name: http}]}\n")
    body = {"files": [{"name": "/in/a.yaml", "text": doc}]}
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/heddle/apply"
            for token in ("", "wrong"):
                async with session.post(url, json=body,
                                        headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 403
            async with session.post(url, json=body,
                                    headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 200
                assert (await r.json())["lines"] == [
                    "ServiceEntry.networking.istio.io default/a created"]
            async with session.post(url, data=b"{}",
                                    headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 400
    finally:
        await runner.cleanup()
