"""The store keeps the last good version of each file and reports what changed."""

from __future__ import annotations

from heddle.api.loader import LoadResult, load_text
from heddle.config.events import ChangeType
from heddle.config.store import ConfigStore
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.clock import FakeClock

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


def test_a_resource_two_files_define_warns_at_both_until_one_goes() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(DR, "a.yaml"))
    event = store.put("b.yaml", load_text(DR, "b.yaml"))
    [rule] = store.resources()
    assert rule.source is not None and rule.source.file == "b.yaml"  # the later name wins
    assert [str(d) for d in event.problems.appeared] == [
        "a.yaml:1:1: warning: DestinationRule shop/reviews: also defined at b.yaml:1:1, which "
        "is in force (the later file name wins); this definition is ignored (keep one "
        "definition)",
        "b.yaml:1:1: warning: DestinationRule shop/reviews: also defined at a.yaml:1:1; this "
        "definition is in force (the later file name wins) (keep one definition)"]
    assert [f.file for f in store.problems().files] == ["a.yaml", "b.yaml"]
    event = store.remove("a.yaml")
    assert store.problems().files == () and store.diagnostics() == []
    assert [(f.file, f.removed) for f in event.problems.fixed] == [("a.yaml", True),
                                                                   ("b.yaml", False)]


async def test_an_invalid_edit_is_a_problem_of_its_file_until_fixed() -> None:
    clock = FakeClock()
    store = ConfigStore(clock=clock)
    store.put("a.yaml", load_text(DR, "a.yaml"))
    broken = DR.replace("host: reviews", "hots: reviews")
    event = store.put("a.yaml", load_text(broken, "a.yaml"))
    [file] = store.problems().files
    assert file.file == "a.yaml" and file.rejected and file.errors >= 1
    [problem] = [d for d in file.problems if 'unknown field "hots"' in d.message]
    assert problem.position is not None and problem.position.line == 5
    assert problem in event.problems.appeared
    assert list(store.problems().rejected()) == ["a.yaml"]
    await clock.advance(3)
    event = store.put("a.yaml", load_text(DR, "a.yaml"))
    [fixed] = event.problems.fixed
    assert (fixed.file, fixed.removed, fixed.at) == ("a.yaml", False, clock.wall())
    assert any('unknown field "hots"' in text for text in fixed.was)
    assert store.problems().files == () and store.problems().fixed == (fixed,)
    assert store.problems().to_json()["fixed"][0]["file"] == "a.yaml"


async def test_fixed_files_are_listed_for_a_while_then_forgotten() -> None:
    clock = FakeClock()
    store = ConfigStore(clock=clock)
    store.put("a.yaml", load_text("kind: [", "a.yaml"))
    store.remove("a.yaml")
    assert [f.file for f in store.problems().fixed] == ["a.yaml"]
    await clock.advance(601)
    store.put("b.yaml", load_text(DR, "b.yaml"))
    assert store.problems().fixed == ()


def test_problems_name_the_line_and_serve_as_json() -> None:
    store = ConfigStore()
    store.put("a.yaml", load_text(DR + "---\n" + DR.replace("host: reviews", "host: 7"),
                                  "a.yaml"))
    data = store.problems().to_json()
    assert data["errors"] >= 1 and data["files"][0]["rejected"] is True
    first = data["files"][0]["problems"][0]
    assert first["severity"] == "error" and first["line"] > 6
    assert first["text"].startswith(f"a.yaml:{first['line']}:")


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
