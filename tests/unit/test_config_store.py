"""The store keeps the last good version of each file and reports what changed."""

from __future__ import annotations

from heddle.api.loader import LoadResult, load_text
from heddle.config.events import ChangeType
from heddle.config.store import ConfigStore
from heddle.model.snapshot import MeshSnapshot

GROUP = "networking.istio.io"
DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
"""


def test_new_file_adds_its_resources_and_bumps_the_version() -> None:
    store = ConfigStore()
    event = store.put("a.yaml", load_text(DR, "a.yaml"))
    assert [(c.type, c.key.name) for c in event.changes] == [(ChangeType.ADDED, "reviews")]
    assert store.version == event.version == 1
    assert MeshSnapshot.of(store).get(GROUP, "DestinationRule", "shop", "reviews")


def test_broken_edit_keeps_the_last_good_resources_and_reports_the_error() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(DR, "a.yaml"))
    broken = DR.replace("host: reviews", "hots: reviews")
    event = store.put("a.yaml", load_text(broken, "a.yaml"))
    assert event.changes == ()
    assert store.version == 1
    assert any('unknown field "hots"' in d.message for d in event.diagnostics)
    assert MeshSnapshot.of(store).get(GROUP, "DestinationRule", "shop", "reviews")
    assert any(d.is_error for d in store.diagnostics())


def test_unchanged_content_is_not_a_change() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(DR, "a.yaml"))
    assert store.put("a.yaml", load_text(DR, "a.yaml")).changes == ()
    assert store.version == 1


def test_edit_and_delete_are_reported_per_resource() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(DR, "a.yaml"))
    edited = store.put("a.yaml", load_text(DR.replace("v1}", "v2}"), "a.yaml"))
    assert [c.type for c in edited.changes] == [ChangeType.UPDATED]
    removed = store.remove("a.yaml")
    assert [c.type for c in removed.changes] == [ChangeType.DELETED]
    assert len(MeshSnapshot.of(store)) == 0


def test_snapshots_are_immutable_versions() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(DR, "a.yaml"))
    first = MeshSnapshot.of(store)
    store.remove("a.yaml")
    assert len(first) == 1 and first.version == 1
    assert len(MeshSnapshot.of(store)) == 0 and MeshSnapshot.of(store).version == 2


def test_same_resource_in_two_files_warns() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(DR, "a.yaml"))
    event = store.put("b.yaml", load_text(DR, "b.yaml"))
    assert any("also defined in a.yaml" in d.message for d in event.diagnostics)


def test_a_higher_layer_replaces_and_hides_what_the_layers_below_define() -> None:
    store = ConfigStore()
    store.put("dir/a.yaml", load_text(DR, "dir/a.yaml"))
    applied = load_text(DR.replace("v1}", "v2}"), "applied/dr.yaml")
    event = store.put("applied/dr.yaml", applied, layer=1)
    assert [c.type for c in event.changes] == [ChangeType.UPDATED]
    [rule] = store.resources()
    assert rule.source is not None and rule.source.file == "applied/dr.yaml"
    [warning] = store.overrides()
    assert "overrides its definition at dir/a.yaml:1:1" in str(warning)
    assert store.diagnostics() == []  # across layers: an override, not a duplicate
    key = rule.key
    store.remove("applied/dr.yaml")
    event = store.put("applied/deleted.json", LoadResult(), layer=1, hides=[key])
    assert [c.type for c in event.changes] == [ChangeType.DELETED]
    assert store.find(key) is None and [d.source for d in store.definitions(key)] == [
        "dir/a.yaml"]
    assert store.overrides() == []
