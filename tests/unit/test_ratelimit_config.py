"""envoyproxy/ratelimit's YAML loads as upstream loads it: its own valid configs load, each of
its broken ones is refused with file:line and a fix, domains merge only when asked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from heddle.ratelimit.config import ConfigError, load_directory, load_texts
from heddle.ratelimit.units import Unit

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpus/ratelimit/envoy-ratelimit"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus/ratelimit/envoy-ratelimit")
TEST_CONFIGS = CORPUS / "test/config"

VALID = ["basic_config.yaml", "duplicate_domain.yaml", "merge_domain_key1.yaml",
         "merge_domain_key2.yaml", "metadata.yaml", "shadowmode_config.yaml",
         "share_threshold.yaml", "wildcard.yaml"]

# Each broken file of upstream's test/config, the line its error is on, and the error
# (upstream's words, from test/config/config_test.go); every one also says how to fix it.
BROKEN = {
    "bad_limit_unit.yaml": (6, "invalid rate limit unit 'foo'"),
    "bad_yaml.yaml": (2, "YAML syntax error"),
    "duplicate_key.yaml": (6, "duplicate descriptor composite key 'test-domain.key1_value1'"),
    "empty_domain.yaml": (1, "config file cannot have empty domain"),
    "empty_key.yaml": (3, "descriptor has empty key"),
    "misspelled_key.yaml": (5, "unknown key 'ratelimit'"),
    "misspelled_key2.yaml": (7, "unknown key 'requestsperunit'"),
    "non_map_list.yaml": (3, "list of type other than map"),
    "non_string_key.yaml": (1, "key is not of type string: 0.25"),
    "replaces_empty.yaml": (10, "should not have an empty replaces entry"),
    "replaces_self.yaml": (10, "replaces should not contain name of same descriptor"),
    "unlimited_with_unit.yaml": (6, "should not specify rate limit unit when unlimited"),
}


def load_corpus(*names: str, merge: bool = False) -> object:
    return load_texts([(name, (TEST_CONFIGS / name).read_text()) for name in names], merge)


@pytest.mark.parametrize("name", VALID)
def test_upstreams_valid_configs_load(name: str) -> None:
    config = load_corpus(name)
    assert list(config.domains) == ["test-domain"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_config_names_file_line_and_fix(name: str) -> None:
    line, message = BROKEN[name]
    with pytest.raises(ConfigError) as raised:
        load_corpus(name)
    [diagnostic] = raised.value.diagnostics
    assert message in diagnostic.message
    assert diagnostic.position is not None
    assert (diagnostic.position.file, diagnostic.position.line) == (name, line)
    assert diagnostic.fix
    assert re.match(rf"{re.escape(name)}:{line}:\d+: error: ", str(raised.value))


def test_misspelled_keys_suggest_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'rate_limit'\?"):
        load_corpus("misspelled_key.yaml")


def test_a_domain_in_two_files_is_an_error_naming_both_unless_merged() -> None:
    with pytest.raises(ConfigError) as raised:
        load_corpus("basic_config.yaml", "duplicate_domain.yaml")
    assert "duplicate domain 'test-domain' in config file" in str(raised.value)
    assert "first defined at basic_config.yaml:2:" in str(raised.value)
    assert "--merge-domains" in str(raised.value)


def test_merged_domains_take_the_descriptors_of_every_file() -> None:
    config = load_corpus("merge_domain_key1.yaml", "merge_domain_key2.yaml", merge=True)
    root = config.domains["test-domain"]  # type: ignore[attr-defined]
    assert sorted(root.children) == ["key1_value1", "key2_value2"]
    with pytest.raises(ConfigError, match="duplicate domain"):
        load_corpus("merge_domain_key1.yaml", "merge_domain_key2.yaml")


def test_merging_still_refuses_a_duplicate_descriptor() -> None:
    with pytest.raises(ConfigError, match="duplicate descriptor composite key"):
        load_corpus("merge_domain_key1.yaml", "merge_domain_key1.yaml", merge=True)


def test_the_tree_is_typed_limits_and_all() -> None:
    root = load_corpus("basic_config.yaml").domains["test-domain"]  # type: ignore[attr-defined]
    sub = root.children["key1_value1"].children
    assert sub["subkey1"].limit.requests_per_unit == 5
    assert sub["subkey1"].limit.unit is Unit.SECOND
    assert sub["subkey1"].limit.stat_key == "test-domain.key1_value1.subkey1"
    assert root.children["key2_value3"].limit is None  # a value with no limit: allowed
    assert root.children["key4"].limit.name == "key4_rate_limit"
    assert root.children["key6"].limit.unlimited
    assert root.children["key7"].limit.detailed_metric


def test_every_file_errors_are_reported_together(tmp_path: Path) -> None:
    for name in ("bad_limit_unit.yaml", "empty_key.yaml"):
        (tmp_path / name).write_text((TEST_CONFIGS / name).read_text())
    with pytest.raises(ConfigError) as raised:
        load_directory(tmp_path)
    assert len(raised.value.diagnostics) == 2


def test_a_directory_reads_yaml_files_and_skips_hidden_ones(tmp_path: Path) -> None:
    runtime = CORPUS / "test/integration/runtime/current/ratelimit"
    (tmp_path / "config").mkdir()
    for path in (runtime / "config").iterdir():
        (tmp_path / "config" / path.name).write_text(path.read_text())
    (tmp_path / "..data").mkdir()  # a ConfigMap volume's real files: read through links
    (tmp_path / "..data" / "x.yaml").write_text("domain: basic\n")
    (tmp_path / ".swap.yaml").write_text("not: [valid")
    (tmp_path / "README.txt").write_text("not config")
    config = load_directory(tmp_path)
    assert sorted(config.domains) == ["another", "basic", "share-threshold-test"]


def test_upstreams_examples_load() -> None:
    example = CORPUS / "examples/ratelimit/config"
    config = load_directory(example)
    assert sorted(config.domains) == ["mongo_cps", "rl"]
    rl = config.domains["rl"]
    assert rl.children["service_service_1"].limit.quota_mode
    assert rl.children["foo"].children["baz_shady"].limit.shadow_mode
