"""Which limit a request's descriptors fall under, as envoyproxy/ratelimit matches them:
exact value, then wildcard, then the key's default; limits only at the descriptor's depth;
`replaces` and `unlimited` across the request's descriptors."""

from __future__ import annotations

from pathlib import Path

import pytest

from heddle.ratelimit.config import load_texts
from heddle.ratelimit.matching import Override, find_limit, limits_to_check
from heddle.ratelimit.model import RateLimitConfig
from heddle.ratelimit.units import Unit

CORPUS = Path("/work/shared/corpus/ratelimit/envoy-ratelimit")
if not CORPUS.is_dir():
    CORPUS = Path(__file__).resolve().parents[3] / "shared/corpus/ratelimit/envoy-ratelimit"


def corpus(name: str) -> RateLimitConfig:
    path = CORPUS / name
    return load_texts([(path.name, path.read_text())])


BASIC = corpus("test/config/basic_config.yaml")
WILDCARD = corpus("test/config/wildcard.yaml")
EXAMPLE = corpus("examples/ratelimit/config/example.yaml")


def limit_of(config: RateLimitConfig, *entries: tuple[str, str],
             domain: str = "test-domain") -> tuple[int, Unit | None] | None:
    match = find_limit(config, domain, entries)
    return None if match is None else (match.limit.requests_per_unit, match.limit.unit)


@pytest.mark.parametrize(("entries", "expected"), [
    ((("key1", "value1"), ("subkey1", "something")), (5, Unit.SECOND)),  # key default
    ((("key1", "value1"), ("subkey1", "subvalue1")), (10, Unit.SECOND)),  # exact value wins
    ((("key2", "anything"),), (20, Unit.MINUTE)),
    ((("key2", "value2"),), (30, Unit.MINUTE)),
    ((("key2", "value3"),), None),  # a value listed without a limit is not limited
    ((("key1", "value1"),), None),  # a level with no limit of its own
    ((("key3", "x"), ("extra", "y")), None),  # deeper than the config: no limit
    ((("key5", "value5"), ("subkey5", "subvalue5")), (25, Unit.DAY)),
    ((("nope", "x"),), None),
])
def test_basic_config_matches_as_upstream(entries: tuple[tuple[str, str], ...],
                                          expected: tuple[int, Unit] | None) -> None:
    assert limit_of(BASIC, *entries) == expected


def test_an_unknown_domain_matches_nothing() -> None:
    assert limit_of(BASIC, ("key2", "x"), domain="other") is None


@pytest.mark.parametrize(("entries", "expected"), [
    ((("wild", "foo"),), 20),  # `*` may stand for nothing
    ((("wild", "foobar"),), 20),
    ((("wild", "bar"),), None),
    ((("noWild", "foobar"),), None),
    ((("midWild", "barab"),), 20),
    ((("midWild", "barabc"),), None),
    ((("multiWild", "foo1bar2baz"),), 10),
    ((("multiWild", "foobaz"),), None),  # the middle part must be there
    ((("nestedWild", "val1"), ("wild", "goose")), 20),
])
def test_wildcards_match_prefixes_and_middles(entries: tuple[tuple[str, str], ...],
                                              expected: int | None) -> None:
    found = limit_of(WILDCARD, *entries)
    assert (found[0] if found else None) == expected


def test_metric_keys_name_the_config_path_not_the_request_values() -> None:
    match = find_limit(BASIC, "test-domain", [("key1", "value1"), ("subkey1", "abc")])
    assert match is not None and match.stat_key == "test-domain.key1_value1.subkey1"
    wild = find_limit(WILDCARD, "test-domain", [("wild", "foobar")])
    assert wild is not None and wild.stat_key == "test-domain.wild_foo*"
    detailed = find_limit(BASIC, "test-domain", [("key7", "v")])
    assert detailed is not None and detailed.stat_key == "test-domain.key7_v"


def test_share_threshold_counts_every_wildcard_match_under_the_pattern() -> None:
    config = corpus("test/config/share_threshold.yaml")
    one = find_limit(config, "test-domain", [("files", "files/a.txt")])
    assert one is not None and one.shared_values == ("files/*",)
    exact = find_limit(config, "test-domain", [("file", "test1")])
    assert exact is not None and exact.limit.requests_per_unit == 50 and not exact.shared_values


def test_an_override_in_the_request_wins() -> None:
    match = find_limit(BASIC, "test-domain", [("key2", "value2")], Override(3, Unit.HOUR))
    assert match is not None
    assert (match.limit.requests_per_unit, match.limit.unit) == (3, Unit.HOUR)


def test_replaces_drops_the_named_limit_and_unlimited_is_not_counted() -> None:
    account = find_limit(EXAMPLE, "rl", [("category", "account")])
    bkthomps = find_limit(EXAMPLE, "rl", [("foo", "x"), ("bar", "bkthomps")])
    unlimited = find_limit(EXAMPLE, "rl", [("qux", "x")])
    applied = limits_to_check([account, bkthomps, unlimited, None])
    assert applied.matches == (account, None, None, None)
    assert applied.unlimited == (False, False, True, False)
    assert limits_to_check([bkthomps]).matches == (bkthomps,)
